import { hostname } from 'node:os';
import { ChainKey, chainKeyFromDek, ChainVerdict, UNKEYED_CHAIN } from '../db/audit-chain';
import type { DeviceAuditVerdict } from '../db/device-audit';
import type { ArchiveProgress } from '../backup';
import type { BackupResult } from '../effects/backup-service';
import type { RestoreReport } from '../effects/restore-service';
import { auditTransitionLog } from '../effects/transition-log-audit';
import { Store, WebSessionRepository } from '../db/store';
import { markFollower, refuseStoreBehindMark } from '../db/high-water-mark';
import { DekKeyring } from '../crypto/dek-keyring';
import { KeyCustody } from '../effects/key-custody';
import { LifecycleEffects } from '../effects/lifecycle-effects';
import { probeStartup } from '../effects/startup-probe';
import { checkSecrets, EventPayloadError, parseExternalEvent } from '../machines/events';
import { keepsOperation } from '../machines/startup-scenario';
import type { EffectName, EffectProgress } from '../machines/effect-signatures';
import type { StartupContext } from '../machines/startup-context';
import type { KeywardConfig } from './config';
import { BootLeaseRepository } from '../db/repositories/boot-lease-repository';
import { BootLease } from './boot-lease';
import { LifecycleEngine, SendResult } from './lifecycle-engine';
import { SecretBox } from './secret-box';
import { deferredBoot, probeWouldEndOperation, Reason } from './node-readiness';
import { outOfStep } from '../hsm/out-of-step';

/** How often, and how far apart, BOOT probes again before it takes an operational install out of operation. */
export const REPROBE = { times: 2, intervalMs: 300 };

/** A node's BOOT not sent: its own probe failed while another node serves the deployment. */
export interface BootDeferred {
  outcome: 'deferred';
  reason: Reason;
}

export interface RuntimeOptions {
  onCheckpoint?: (name: string) => Promise<void>;
  onProgress?: (effect: EffectName, report: EffectProgress) => void;
  busyWaitMs?: number;
}

/**
 * The composition root of one keyward process: configuration, database, DEK keyring, key custody,
 * effects and the lifecycle engine. The CLI and the web server each open one.
 */
export class KeywardRuntime {
  readonly store: Store;
  readonly keyring = new DekKeyring();
  readonly custody: KeyCustody;
  readonly engine: LifecycleEngine;
  /** One BOOT decides at a time, whichever process (replica, CLI) sends it. */
  readonly bootLease: BootLease;
  private cachedChainKey: ChainKey | null = null;
  private triedDekForChain = false;
  private booted = false;

  constructor(
    readonly config: KeywardConfig,
    private readonly options: RuntimeOptions = {},
  ) {
    // SoftHSM2 reads its configuration at C_Initialize; point it at ours before any module loads.
    process.env.SOFTHSM2_CONF = config.softhsmConf;
    this.store = Store.open(config.database, this.keyring);
    this.store.lifecycle.onCommit = markFollower(config.home);
    this.custody = new KeyCustody(this.store, this.keyring, {
      secretsDir: config.secretsDir,
      kekLabel: config.kekLabel,
      kdf: config.kdf,
      kdfCeiling: config.kdfCeiling,
      recoveryShareTtlSeconds: config.recoveryShareTtlSeconds,
    });
    const effects = new LifecycleEffects(this.custody, config);
    this.bootLease = new BootLease(new BootLeaseRepository(this.store.db), config.deployment, {
      engine: config.database.client,
      host: hostname(),
      pid: process.pid,
      ttlMs: config.bootLeaseMs,
      onWait: (holder) => process.stderr.write(`keyward: waiting for the BOOT of process ${holder.pid ?? '?'} on ${holder.host ?? '?'} (one BOOT decides at a time)\n`),
      onLost: () => process.stderr.write('keyward: the BOOT lease expired while this BOOT ran (another process took it over): its commits will be refused\n'),
    });
    this.engine = new LifecycleEngine({
      repository: this.store.lifecycle,
      effects,
      deployment: config.deployment,
      onCheckpoint: options.onCheckpoint,
      onProgress: options.onProgress,
      busyWaitMs: options.busyWaitMs,
      chainKey: () => this.chainKey(),
      onVersion: (version) => this.store.cache.observe(version),
      leaseHeld: (lease) => this.bootLease.holds(lease),
    });
  }

  /**
   * The transition log is keyed with a key derived from the DEK whenever this process can hold the
   * DEK (HSM storage, KEK reachable); otherwise its rows are chained unkeyed and say so.
   */
  async chainKey(): Promise<ChainKey> {
    if (this.keyring.current === null && !this.triedDekForChain) {
      this.triedDekForChain = true; // once per process: a locked hierarchy stays locked until recovery loads the DEK
      try {
        await this.custody.ensureDek();
      } catch {
        // The hierarchy is locked (auto-restore pending): chain unkeyed.
      }
    }
    const current = this.keyring.currentDek;
    const keyId = this.keyring.current;
    if (!current || !keyId) return UNKEYED_CHAIN;
    if (this.cachedChainKey?.id !== `dek:${keyId}`) this.cachedChainKey = chainKeyFromDek(keyId, current.key);
    return this.cachedChainKey;
  }

  /**
   * Probes the real situation and sends BOOT, from whatever state was persisted, under the BOOT
   * lease. A process for which another's BOOT decided after it started (replicas started at once)
   * follows that decision instead of deciding again, unless it must decide itself: nothing persisted
   * yet, an effect left behind by a dead holder, another keyward version, or a store a restore has
   * just replaced (`follow: false`).
   */
  async boot(source = 'startup', options: { follow?: boolean } = {}): Promise<SendResult> {
    return (await this.underBootLease(options, (lease) => this.probeAndBoot(source, lease, null))) as SendResult;
  }

  /**
   * BOOT as one node of several (`keyward start`, server/node-health.ts): when this node's probe
   * would take an operational deployment out of operation while another node serves it (a fresh
   * heartbeat, the token reached, the DEK held), the trouble is this node's, not the deployment's:
   * no BOOT is sent, and the caller keeps the node unready and asks again. With no such node BOOT
   * decides as always, so a real loss or outage is still found. Under the BOOT lease like boot().
   */
  async bootAsNode(source: string, servingPeer: () => Promise<{ nodeId: string } | null>): Promise<SendResult | BootDeferred> {
    return this.underBootLease({}, (lease) => this.probeAndBoot(source, lease, servingPeer));
  }

  /** One BOOT decides at a time: the lease is held from the probe to the last effect of the BOOT. */
  private async underBootLease(options: { follow?: boolean }, decide: (lease: string) => Promise<SendResult | BootDeferred>): Promise<SendResult | BootDeferred> {
    // Its first BOOT stands for the process's start (replicas started at once); a later one for itself.
    const lease = await this.bootLease.acquire(this.booted ? 0 : process.uptime() * 1000);
    this.booted = true;
    let decided = false;
    try {
      if (options.follow !== false && lease.decidedSinceStart) {
        const followed = await this.followDecidedBoot();
        if (followed) return followed;
      }
      const result = await decide(lease.holder);
      decided = result.outcome !== 'startup_refused' && result.outcome !== 'conflict' && result.outcome !== 'deferred';
      return result;
    } finally {
      await lease.release(decided).catch(() => undefined); // unreleased, it expires
    }
  }

  /** The state another process's BOOT decided, when this process may take it as its own. */
  private async followDecidedBoot(): Promise<SendResult | null> {
    const inspection = await this.engine.inspect({ historyLimit: 0 });
    const { context } = inspection;
    if (inspection.revision === null || inspection.pendingEffect || inspection.state === 'unbooted') return null;
    if (context.startup?.appVersion !== this.config.appVersion) return null;
    return {
      outcome: 'applied',
      followed: true,
      state: inspection.state,
      wizardState: inspection.wizardState,
      scenario: inspection.scenario,
      revision: inspection.revision,
      message: `another process's BOOT decided this state (revision ${inspection.revision}) after this one started: followed it`,
      error: null,
    };
  }

  private async probeAndBoot(source: string, lease: string, servingPeer: (() => Promise<{ nodeId: string } | null>) | null): Promise<SendResult | BootDeferred> {
    const { operational, startup } = await this.probeForBoot();
    if (servingPeer && operational) {
      const problem = probeWouldEndOperation(startup);
      const peer = problem ? await servingPeer() : null;
      if (problem && peer) return { outcome: 'deferred', reason: deferredBoot(problem, peer.nodeId) };
    }
    return this.engine.send({ type: 'BOOT', at: new Date().toISOString(), startup }, { source, secrets: new SecretBox(), lease });
  }

  /**
   * An operational install whose probe says otherwise is probed again before that BOOT may take it
   * out of operation: one probe racing other processes on the same token must not end a healthy service.
   */
  private async probeForBoot(): Promise<{ operational: boolean; startup: StartupContext }> {
    // The probe reads what is really there now (a restore may have replaced the store): nothing kept.
    this.store.cache.invalidate();
    await refuseStoreBehindMark(this.config.home, this.config.deployment, this.store.lifecycle);
    const { snapshot } = await this.engine.load();
    const probe = () => probeStartup(this.custody, this.config.appVersion, snapshot.context.wizardCompleted, this.config.deployment);
    let startup = await probe();
    const operational = snapshot.hasTag('operational');
    if (operational) {
      for (let again = 0; again < REPROBE.times && !keepsOperation(startup); again++) {
        await new Promise((resolve) => setTimeout(resolve, outOfStep(REPROBE.intervalMs)));
        startup = await probe();
      }
    }
    return { operational, startup };
  }

  /**
   * Finishes a key rotation that a crash interrupted (docs/lifecycle.md "Key rotation"): BOOT leaves
   * it recorded in the context, and its own event resumes it at the step it reached. Null when
   * none is under way or the machine is not operational.
   */
  async resumeKeyRotation(source: string): Promise<SendResult | null> {
    const { snapshot } = await this.engine.load();
    const kind = snapshot.context.keyRotation?.kind;
    if (!kind || !snapshot.hasTag('operational')) return null;
    return this.send(kind === 'kek' ? 'ROTATE_KEK' : 'ROTATE_DEK', {}, {}, source);
  }

  /**
   * An event from outside (CLI, web, script): checked, secrets checked beside it, then applied.
   * A bad payload or a missing secret is refused before anything is touched.
   */
  async send(
    type: string,
    payload: Record<string, unknown>,
    secrets: Record<string, string>,
    source: string,
    /** Shows what the event's effect hands out (recovery shares), before they are dropped. */
    onRevealed?: (box: SecretBox) => void,
  ): Promise<SendResult> {
    const box = new SecretBox(secrets, { output: onRevealed !== undefined });
    try {
      const event = parseExternalEvent(type, payload, new Date().toISOString());
      checkSecrets(event, secrets);
      const result = await this.engine.send(event, { source, secrets: box });
      onRevealed?.(box);
      if (result.bootRequired) {
        await this.endRestoredSessions();
        return await this.boot('restore', { follow: false });
      }
      return result;
    } catch (error) {
      if (error instanceof EventPayloadError) {
        const { state, wizardState, revision } = await this.engine.inspect({ historyLimit: 0 }).catch(() => ({ state: 'unknown', wizardState: null, revision: null }));
        return { outcome: 'refused', state, wizardState, revision, message: error.message, error: { code: 'INVALID_EVENT', message: error.message, field: error.field } };
      }
      throw error;
    } finally {
      box.clear();
    }
  }

  /** `keyward backup`: one encrypted archive, taken while the server runs. */
  async backup(output: string, passphrase: string, onProgress?: (progress: ArchiveProgress) => void): Promise<BackupResult> {
    const c = this.config;
    const { createBackup } = require('../effects/backup-service') as typeof import('../effects/backup-service');
    return createBackup(
      {
        home: c.home,
        tlsDir: c.tlsDir,
        database: c.database,
        deployment: c.deployment,
        publicConfig: {
          appVersion: c.appVersion,
          deployment: c.deployment,
          tokenLabel: c.tokenLabel,
          kekLabel: c.kekLabel,
          pkcs11Module: c.pkcs11Module,
          host: c.host,
          port: c.port,
          defaultSubjectAltNames: c.defaultSubjectAltNames,
        },
        store: this.store,
        custody: this.custody,
      },
      output,
      passphrase,
      { onProgress, onCheckpoint: this.options.onCheckpoint },
    );
  }

  /** `keyward restore`: the archive replaces the store (moved to quarantine), then BOOT decides. */
  async restore(archive: string, passphrase: string, onProgress?: (message: string) => void): Promise<{ report: RestoreReport; boot: SendResult }> {
    const { restoreArchive } = require('../effects/restore-service') as typeof import('../effects/restore-service');
    const report = await this.engine.exclusive(() =>
      restoreArchive({ home: this.config.home, tlsDir: this.config.tlsDir, database: this.config.database, appVersion: this.config.appVersion, liveDb: this.store.db }, archive, passphrase, {
        onProgress,
        onCheckpoint: this.options.onCheckpoint,
        kdfCeiling: this.config.kdfCeiling,
      }),
    );
    this.keyring.clear();
    await this.endRestoredSessions();
    return { report, boot: await this.boot('restore', { follow: false }) };
  }

  /** A restored store holds the web sessions of the installation it came from: none stays valid here. */
  private async endRestoredSessions(): Promise<void> {
    const sessions = new WebSessionRepository(this.store.db);
    if (await sessions.tableExists()) await sessions.deleteAll();
  }

  /**
   * `keyward audit verify`: the transition log's chain, with the DEK when this process can unwrap it,
   * and the device audit's chain (null when the schema predates it). `ok` only when both hold.
   */
  async audit(): Promise<ChainVerdict & { deviceAudit: DeviceAuditVerdict | null }> {
    try {
      await this.custody.ensureDek();
    } catch {
      // Locked: keyed rows are checked for their links only, and counted as unverified.
    }
    const transitionLog = await auditTransitionLog(this.store, this.keyring, this.config.deployment);
    const deviceAudit = await this.store.devices.verifyAuditIfPresent();
    return { ...transitionLog, ok: transitionLog.ok && (deviceAudit?.ok ?? true), deviceAudit };
  }

  async close(): Promise<void> {
    this.keyring.clear();
    await this.store.close();
  }
}
