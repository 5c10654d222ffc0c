import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { TransitionRow } from '../../db/repositories/lifecycle-repository';
import type { BackupStatus } from '../backup-status';
import type { Inspection } from '../lifecycle-engine';
import { ageSeconds, PolicyKeyRecord, ReencryptionProgress, reencryptionRate, ROTATION_CHECKS, RotationPolicyConfig, rotationsDue } from '../rotation-policy';

/**
 * The server's Prometheus metrics. Lifecycle metrics come from the transition log, so they count
 * what every process did (the CLI included), not only this one; effect durations are the time
 * between the row that started an effect and the row that recorded its end.
 */
export class WebMetrics {
  readonly registry = new Registry();
  readonly state = new Gauge({ name: 'keyward_lifecycle_state', help: 'The lifecycle state: 1 for the current one', labelNames: ['state', 'wizard_state'], registers: [this.registry] });
  readonly revision = new Gauge({ name: 'keyward_lifecycle_revision', help: 'The revision of the persisted lifecycle', registers: [this.registry] });
  readonly transitions = new Counter({
    name: 'keyward_lifecycle_transitions_total',
    help: 'Transitions seen in the transition log since this process started, by event and channel (web, cli, effect, ...)',
    labelNames: ['event', 'source'],
    registers: [this.registry],
  });
  readonly passwordAttempts = new Counter({
    name: 'keyward_backup_password_attempts_total',
    help: 'Backup password submissions (auto-restore, and the authorizing password of a backup password change), by result (accepted, wrong, locked_out, error)',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly passwordFailures = new Gauge({ name: 'keyward_backup_password_failures', help: 'Consecutive wrong backup passwords, as persisted by the machine', registers: [this.registry] });
  readonly passwordLocked = new Gauge({ name: 'keyward_backup_password_locked', help: '1 while backup password attempts are locked out', registers: [this.registry] });
  readonly effectDuration = new Histogram({
    name: 'keyward_effect_duration_seconds',
    help: 'How long each lifecycle effect ran, from the transition log',
    labelNames: ['effect', 'result'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly ready = new Gauge({ name: 'keyward_ready', help: '1 when /readyz answers 200', registers: [this.registry] });
  readonly nodeReady = new Gauge({ name: 'keyward_node_ready', help: '1 when this node is ready: the lifecycle settled and its own checks pass', registers: [this.registry] });
  readonly nodeHeartbeat = new Gauge({ name: 'keyward_node_heartbeat_timestamp_seconds', help: 'When this node last wrote its heartbeat (Unix time)', registers: [this.registry] });
  readonly nodes = new Gauge({ name: 'keyward_nodes', help: "The deployment's nodes in the nodes table, by state (ready, unready, gone)", labelNames: ['state'], registers: [this.registry] });
  readonly tlsNotAfter = new Gauge({ name: 'keyward_tls_certificate_not_after_seconds', help: 'Expiry of the served TLS certificate (Unix time)', registers: [this.registry] });
  readonly tlsSwaps = new Counter({ name: 'keyward_tls_swaps_total', help: 'Live TLS credential swaps in this process', registers: [this.registry] });
  readonly httpRequests = new Counter({ name: 'keyward_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [this.registry] });
  readonly httpDuration = new Histogram({
    name: 'keyward_http_request_duration_seconds',
    help: 'HTTP request duration by route',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly rotationDue = new Gauge({
    name: 'keyward_rotation_due',
    help: '1 when the rotation policy says the key is due for rotation, for the reason named (encryptions, age)',
    labelNames: ['key', 'reason'],
    registers: [this.registry],
  });
  readonly dekEncryptions = new Gauge({
    name: 'keyward_dek_encryptions',
    help: 'GCM encryptions recorded under each live DEK (the limit is 2^32)',
    labelNames: ['key_id'],
    registers: [this.registry],
  });
  readonly dekAge = new Gauge({ name: 'keyward_dek_age_seconds', help: 'Age of the primary DEK', labelNames: ['key_id'], registers: [this.registry] });
  readonly kekAge = new Gauge({ name: 'keyward_kek_age_seconds', help: 'Age of the KEK that wraps the keyset', registers: [this.registry] });
  readonly reencryptionDone = new Gauge({ name: 'keyward_dek_reencryption_values_done', help: 'Values the newest DEK re-encryption job has rewritten', registers: [this.registry] });
  readonly reencryptionLeft = new Gauge({
    name: 'keyward_dek_reencryption_values_left',
    help: 'Values the newest DEK re-encryption job has still to rewrite (0 once it finished)',
    registers: [this.registry],
  });
  readonly reencryptionRate = new Gauge({
    name: 'keyward_dek_reencryption_values_per_second',
    help: 'Values per second of the newest DEK re-encryption job, from its start to its last batch',
    registers: [this.registry],
  });

  readonly backupLastSuccess = new Gauge({
    name: 'keyward_backup_last_success_timestamp_seconds',
    help: 'When the last successful backup (scheduled or from the web page) finished (Unix time; 0: none yet)',
    registers: [this.registry],
  });
  readonly drillLastSuccess = new Gauge({
    name: 'keyward_drill_last_success_timestamp_seconds',
    help: 'When the last successful restore drill finished (Unix time; 0: none yet)',
    registers: [this.registry],
  });
  readonly drillRto = new Gauge({
    name: 'keyward_drill_rto_seconds',
    help: 'The recovery time the last successful restore drill measured, from an empty host to a verified secret',
    registers: [this.registry],
  });
  readonly backupLastFailed = new Gauge({
    name: 'keyward_backup_last_run_failed',
    help: '1 when the newest finished run failed, by kind (backup, drill)',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly backupStale = new Gauge({
    name: 'keyward_backup_stale',
    help: '1 when no run of the kind (backup, drill) succeeded within its configured maximum age',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly kekHealthy = new Gauge({
    name: 'keyward_kek_healthy',
    help: 'With a second KEK: 1 when the KEK (primary, second) unwrapped its copy of every live DEK at the last probe, 0 when not',
    labelNames: ['kek'],
    registers: [this.registry],
  });
  readonly kekHealthSince = new Gauge({
    name: 'keyward_kek_health_since_seconds',
    help: 'With a second KEK: since when (Unix time) each KEK has been healthy or unhealthy as keyward_kek_healthy says',
    labelNames: ['kek'],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  observeInspection(inspection: Inspection, now: Date = new Date()): void {
    this.state.reset();
    this.state.set({ state: inspection.state, wizard_state: inspection.wizardState ?? '' }, 1);
    if (inspection.revision !== null) this.revision.set(inspection.revision);
    this.passwordFailures.set(inspection.context.passwordFailures);
    const lockedUntil = inspection.context.lockedUntil;
    this.passwordLocked.set(lockedUntil !== null && Date.parse(lockedUntil) > now.getTime() ? 1 : 0);
  }

  /** `rows` in revision order; the first one may be a row already seen, kept to time the next one's effect. */
  observeTransitions(rows: TransitionRow[], afterRevision: number): void {
    rows.forEach((row, index) => {
      if (row.revision <= afterRevision) return;
      // The channel only ("web:<admin>" → "web"): /metrics is public, an administrator's name is not.
      this.transitions.inc({ event: row.eventType, source: row.source.split(':')[0]! });
      const previous = rows[index - 1];
      if (row.source === 'effect') {
        const [effect, result] = row.eventType.split(':') as [string, string];
        if (previous && previous.revision === row.revision - 1) {
          this.effectDuration.observe({ effect, result }, Math.max(0, (Date.parse(row.at) - Date.parse(previous.at)) / 1000));
        }
        if (effect === 'recoverDek' || effect === 'changeBackupPassword') {
          const code = (row.payload as { error?: { code?: string } }).error?.code;
          this.passwordAttempts.inc({ result: result === 'done' ? 'accepted' : code === 'WRONG_BACKUP_PASSWORD' ? 'wrong' : 'error' });
        }
      } else if ((row.eventType === 'SUBMIT_BACKUP_PASSWORD' || row.eventType === 'CHANGE_BACKUP_PASSWORD') && row.fromState === row.toState) {
        // The lockout guard keeps the machine where it is.
        this.passwordAttempts.inc({ result: 'locked_out' });
      }
    });
  }

  /** The keyset as the database records it, the newest re-encryption job, and what the policy says of them. */
  observeKeys(keyset: readonly PolicyKeyRecord[], job: ReencryptionProgress | null, policy: RotationPolicyConfig, now: Date = new Date()): void {
    const due = rotationsDue(keyset, now, policy);
    for (const check of ROTATION_CHECKS) this.rotationDue.set(check, due.some((item) => item.key === check.key && item.reason === check.reason) ? 1 : 0);
    // Retired DEKs leave the gauges with the keyset.
    this.dekEncryptions.reset();
    this.dekAge.reset();
    this.kekAge.reset();
    for (const record of keyset) if (record.state !== 'retired') this.dekEncryptions.set({ key_id: record.dekKeyId }, record.gcmEncryptions);
    const primary = keyset.find((record) => record.state === 'primary');
    if (primary) {
      this.dekAge.set({ key_id: primary.dekKeyId }, ageSeconds(primary.createdAt, now));
      if (primary.wrapped) this.kekAge.set(ageSeconds(primary.kekCreatedAt, now));
    }
    const rate = job ? reencryptionRate(job) : { valuesLeft: 0, valuesPerSecond: 0 };
    this.reencryptionDone.set(job?.valuesDone ?? 0);
    this.reencryptionLeft.set(rate.valuesLeft);
    this.reencryptionRate.set(rate.valuesPerSecond);
  }

  observeBackups(status: BackupStatus): void {
    const finished = (run: { finishedAt: string | null; startedAt: string } | null) => (run ? Date.parse(run.finishedAt ?? run.startedAt) / 1000 : 0);
    this.backupLastSuccess.set(finished(status.backup.lastSuccess));
    this.drillLastSuccess.set(finished(status.drill.lastSuccess));
    this.drillRto.set(status.drill.lastSuccess?.rtoSeconds ?? 0);
    for (const summary of [status.backup, status.drill]) {
      this.backupLastFailed.set({ kind: summary.kind }, summary.failed ? 1 : 0);
      this.backupStale.set({ kind: summary.kind }, summary.stale ? 1 : 0);
    }
  }

  /** Each KEK's health as the last probe recorded it; no series without a second KEK. */
  observeKekHealth(health: ReadonlyArray<{ kek: string; healthy: boolean; since: string }>): void {
    this.kekHealthy.reset();
    this.kekHealthSince.reset();
    for (const { kek, healthy, since } of health) {
      this.kekHealthy.set({ kek }, healthy ? 1 : 0);
      this.kekHealthSince.set({ kek }, Date.parse(since) / 1000);
    }
  }

  observeNodes(states: readonly string[]): void {
    for (const state of ['ready', 'unready', 'gone']) this.nodes.set({ state }, states.filter((s) => s === state).length);
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.httpRequests.inc({ method, route, status: String(status) });
    this.httpDuration.observe({ method, route }, seconds);
  }
}
