import { createHmac, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { NodeRecord, NodeRepository } from '../db/repositories/node-repository';
import { describePinSource, readPin } from '../hsm/pin-source';
import { outOfStep } from '../hsm/out-of-step';
import type { Pkcs11Token } from '../hsm/pkcs11-token';
import { isHsmStorage } from '../hsm/storage-type';
import { readEnvironment } from './config-schema';
import type { SendResult } from './lifecycle-engine';
import { NodeChecks, nodeReasons, NodeState, nodeState, Readiness, readiness, Reason, servingPeer } from './node-readiness';
import { BootDeferred, KeywardRuntime, REPROBE } from './runtime';
import { isReady, phaseOf } from './web/lifecycle-phase';

/** What the web server tells the node about itself once it serves (server/serve.ts attaches it). */
export interface NodeSurroundings {
  /** The persisted lifecycle state as the watcher last read it, or null. */
  lifecycleState(): string | null;
  watcherHealthy(): boolean;
  /** The fingerprint of the certificate this process serves now. */
  servedFingerprint(): string;
  logger: { warn(fields: object, message: string): void; info(fields: object, message: string): void };
}

/** A node's row with what it means now: ready, unready, or gone (silent for three of its intervals). */
export interface NodeListing extends NodeRecord {
  state: NodeState;
}

/**
 * The deployment's nodes as the status page, `keyward inspect` and /metrics show them; none before
 * migration 011. A listing read within the last second serves again (heartbeats are seconds apart; a
 * page under load must not read them, or judge their states, per request): each state as of its reading.
 */
export async function listNodes(runtime: KeywardRuntime, now: Date = new Date()): Promise<readonly NodeListing[]> {
  const store = runtime.store;
  let recent = recentNodes.get(store);
  if (!recent || now.getTime() - recent.readAt > NODE_ROWS_FRESH_MS || now.getTime() < recent.readAt) {
    const nodes = new NodeRepository(store.db, store.reader);
    // Once the table is there it stays (migrations only add): asked until then.
    const records = recent || (await nodes.tableExists()) ? await nodes.list(runtime.config.deployment) : null;
    // Each node's state as of the reading: as fresh as the rows it is drawn from.
    recent = { readAt: now.getTime(), listing: records && records.map((record) => Object.freeze({ ...record, state: nodeState(record, now) })) };
    if (records) recentNodes.set(store, recent);
  }
  return recent.listing ?? [];
}

const NODE_ROWS_FRESH_MS = 1_000;
/** Per store: a restore that opens another store starts afresh. */
const recentNodes = new WeakMap<KeywardRuntime['store'], { readAt: number; listing: readonly NodeListing[] | null }>();

/** What the token says of a PIN it refuses: the heartbeat does not try that PIN again. */
const PIN_REFUSED = new Set(['WRONG_PIN', 'PIN_LOCKED']);

/** Keys the tag of a refused PIN: random per process, so the tag is no stored PIN check. */
const PIN_TAG_KEY = randomBytes(32);

/** Rows of nodes silent for this long are pruned when a node starts: a day of "gone" is enough to be seen. */
const PRUNE_AFTER_MS = 24 * 3_600_000;

/**
 * This process as one node of the deployment (docs/deployment.md "Several replicas"): every
 * KEYWARD_HEARTBEAT_SECONDS it checks what it needs (the database, the token, the DEK, the TLS
 * certificate it serves), keeps its own readiness and writes its row in the nodes table. Its
 * BOOT is deferred while its own probe fails and another node serves (KeywardRuntime.bootAsNode);
 * each beat asks again, so a node whose token comes back becomes ready by itself.
 */
export class NodeHealth {
  readonly nodeId: string;
  readonly host = hostname();
  readonly startedAt = new Date().toISOString();
  readonly heartbeatSeconds: number;
  private readonly nodes: NodeRepository;
  private surroundings: NodeSurroundings | null = null;
  private checks: NodeChecks | null = null;
  private booted = false;
  private deferred: Reason | null = null;
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> = Promise.resolve();
  private stopped = false;
  private pruned = false;
  /** Migration 011 is in the database: asked until it is (a node may start before the first BOOT migrates). */
  private tableSeen = false;
  private onBooted: ((result: SendResult) => Promise<void> | void) | null = null;
  /** The tag of the PIN the token last refused (source and PIN): each try would cost one of the token's attempts. */
  private refusedPin: string | null = null;
  /** The same for the second KEK's token (docs/lifecycle.md "A second KEK"). */
  private refusedSecondPin: string | null = null;
  /** When this node last wrote its row (ms since the epoch), or null. */
  lastBeatAt: number | null = null;

  constructor(
    private readonly runtime: KeywardRuntime,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.heartbeatSeconds = readEnvironment(env).KEYWARD_HEARTBEAT_SECONDS;
    this.nodeId = `${this.host}:${process.pid}:${Date.parse(this.startedAt).toString(36)}`;
    this.nodes = new NodeRepository(runtime.store.db, runtime.store.reader);
  }

  /** The BOOT of `keyward start`: sent, or deferred while another node serves (see KeywardRuntime.bootAsNode). */
  async boot(source: string): Promise<SendResult | BootDeferred> {
    const result = await this.runtime.bootAsNode(source, () => this.servingPeer());
    if (result.outcome === 'deferred') {
      this.deferred = result.reason;
    } else {
      this.deferred = null;
      this.booted = result.outcome !== 'startup_refused';
    }
    return result;
  }

  /** Why BOOT waits for this node's own probe, or null. */
  get bootDeferred(): Reason | null {
    return this.deferred;
  }

  /** Another live node that reaches the token and holds the DEK; null too when the table cannot be read. */
  async servingPeer(): Promise<NodeRecord | null> {
    try {
      if (!(await this.nodes.tableExists())) return null;
      return servingPeer(await this.nodes.list(this.runtime.config.deployment), this.nodeId, new Date());
    } catch {
      return null;
    }
  }

  /**
   * Starts the heartbeat; the first beat runs now. `onBooted` hears of a deferred BOOT that a later
   * beat sent.
   */
  start(surroundings: NodeSurroundings, onBooted: (result: SendResult) => Promise<void> | void): Promise<void> {
    this.surroundings = surroundings;
    this.onBooted = onBooted;
    this.stopped = false;
    this.timer ??= setInterval(() => void this.beat(), this.heartbeatSeconds * 1000);
    this.timer.unref();
    return this.beat();
  }

  /** No more beats; the row is deleted (a graceful shutdown is no gone node). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.beating;
    try {
      if (await this.nodes.tableExists()) await this.nodes.remove(this.nodeId);
    } catch (error) {
      this.surroundings?.logger.warn({ error: (error as Error).message }, 'this node could not remove its row from the nodes table');
    }
  }

  /** This node's readiness now: the lifecycle as last read, and its own checks as of the last beat. */
  get readiness(): Readiness {
    const s = this.surroundings;
    return readiness(
      { booted: this.booted, state: s?.lifecycleState() ?? null, watcherHealthy: s?.watcherHealthy() ?? true, bootDeferred: this.deferred },
      this.checks ? nodeReasons(this.current(this.checks)) : [],
    );
  }

  /** The last beat's checks with the certificate served now: a live swap counts at once, not at the next beat. */
  private current(checks: NodeChecks): NodeChecks {
    const served = this.surroundings?.servedFingerprint() ?? checks.servedFingerprint;
    if (served === null || checks.activeFingerprint === null) return checks;
    return { ...checks, servedFingerprint: served, tlsCurrent: served === checks.activeFingerprint };
  }

  /**
   * The lifecycle moved (an event on any node): checked again now, not at the next beat, so /readyz
   * follows a recovery at once. A refused PIN is tried once more: the token may be a new one (an
   * auto-restore set it up), or one another node was still initialising when this node looked (no
   * user PIN yet). Once per lifecycle change, never in a loop: a physical token counts wrong PINs.
   */
  lifecycleChanged(): Promise<void> {
    this.refusedPin = null;
    return this.beat();
  }

  /** One beat at a time: a beat that overran its interval is not stacked. */
  beat(): Promise<void> {
    if (this.stopped) return this.beating;
    this.beating = this.beating.then(() => this.beatOnce()).catch((error: unknown) => this.surroundings?.logger.warn({ error: (error as Error).message }, 'the node heartbeat failed'));
    return this.beating;
  }

  private async beatOnce(): Promise<void> {
    if (this.stopped) return;
    this.checks = await this.check();
    if (this.deferred && !this.stopped) await this.retryBoot();
    if (!this.checks.databaseReachable) return;
    const checks = this.current(this.checks);
    const verdict = this.readiness;
    const now = new Date();
    const record: NodeRecord = {
      nodeId: this.nodeId,
      deployment: this.runtime.config.deployment,
      host: this.host,
      pid: process.pid,
      version: this.runtime.config.appVersion,
      heartbeatSeconds: this.heartbeatSeconds,
      startedAt: this.startedAt,
      lastHeartbeat: now.toISOString(),
      ready: verdict.ready,
      reasons: verdict.reasons.map((reason) => reason.detail),
      databaseReachable: checks.databaseReachable,
      tokenReachable: checks.tokenReachable,
      dekLoaded: checks.dekLoaded,
      tlsCurrent: checks.tlsCurrent,
    };
    try {
      this.tableSeen ||= await this.nodes.tableExists();
      if (!this.tableSeen) return;
      await this.nodes.beat(record);
      this.lastBeatAt = now.getTime();
      if (!this.pruned) {
        this.pruned = true;
        const pruned = await this.nodes.pruneSilentSince(record.deployment, new Date(now.getTime() - PRUNE_AFTER_MS).toISOString());
        if (pruned > 0) this.surroundings?.logger.info({ pruned }, 'rows of nodes silent for a day removed from the nodes table');
      }
    } catch (error) {
      this.surroundings?.logger.warn({ error: (error as Error).message }, 'this node could not write its heartbeat');
    }
    await this.takeOverDeadStep().catch((error: unknown) => this.surroundings?.logger.warn({ error: (error as Error).message }, 'a step whose node died could not be taken over'));
  }

  /**
   * A step recorded as running whose node died (killed inside an effect an event started): that node
   * will send nothing more, and every other node's event is refused as busy meanwhile. A BOOT under
   * the lease settles it — it re-probes what the dead node left, and the machine goes on from there;
   * a secret given to the dead node died with it, so the operator gives it again through any node.
   */
  private async takeOverDeadStep(): Promise<void> {
    if (this.deferred || !this.booted || this.stopped) return;
    const { pendingEffect } = await this.runtime.engine.inspect({ historyLimit: 0 });
    if (!pendingEffect || !(await this.ownerGone(pendingEffect.owner))) return;
    this.surroundings?.logger.warn({ effect: pendingEffect.src, owner: pendingEffect.owner }, 'the node running a step died: this node takes it over with a BOOT');
    const result = await this.runtime.boot('takeover');
    await this.onBooted?.(result);
  }

  /** Same host: its process is gone. Another host: no heartbeat of that host and pid for 3 of its intervals. */
  private async ownerGone(owner: { host: string; pid: number }): Promise<boolean> {
    if (owner.host === this.host) {
      if (owner.pid === process.pid) return false;
      try {
        process.kill(owner.pid, 0);
        return false;
      } catch (error) {
        return (error as NodeJS.ErrnoException).code === 'ESRCH';
      }
    }
    const row = (await this.nodes.list(this.runtime.config.deployment)).find((node) => node.host === owner.host && node.pid === owner.pid);
    return !row || nodeState(row, new Date()) === 'gone';
  }

  /**
   * The deferred BOOT again: when this node reaches the token now, or when no other node serves any
   * more (then BOOT decides for the deployment, as at any start).
   */
  private async retryBoot(): Promise<void> {
    if (this.checks?.tokenReachable !== true && (await this.servingPeer())) return;
    const result = await this.boot('node-recovered');
    if (result.outcome === 'deferred') return;
    this.surroundings?.logger.info({ state: result.state, outcome: result.outcome }, 'the deferred BOOT of this node was sent');
    // The checks are read again: the BOOT loaded the DEK and the stored certificate.
    this.checks = await this.check();
    await this.onBooted?.(result);
  }

  /**
   * The token answers and holds the KEK. A failed probe is repeated as BOOT's is (REPROBE): other
   * processes rescanning the same token may hide it from one probe, and a blip must not make a
   * healthy node unready. A PIN the token refused is not tried again until the PIN changes.
   */
  private async checkToken(token: Pkcs11Token, kekId: string | undefined, which: 'primary' | 'second' = 'primary'): Promise<Pick<NodeChecks, 'tokenReachable' | 'tokenProblem'>> {
    const refused = which === 'primary' ? this.refusedPin : this.refusedSecondPin;
    let pinTag: string;
    try {
      pinTag = createHmac('sha256', PIN_TAG_KEY).update(describePinSource(token.config.pin)).update('\0').update(readPin(token.config.pin)).digest('hex');
    } catch {
      return { tokenReachable: false, tokenProblem: 'PIN_MISSING' };
    }
    if (pinTag === refused) return { tokenReachable: false, tokenProblem: 'WRONG_PIN' };
    // A full probe rescans the module, which ends every session of this process: while an event's
    // effect runs here, the session it works in answers instead (a failure there falls through).
    if (this.runtime.engine.busy) {
      try {
        if (token.findKekId(kekId) !== null) return { tokenReachable: true, tokenProblem: null };
      } catch {
        // Not through the kept session: the probe below says why.
      }
    }
    let probe = await token.probe(undefined, kekId);
    const reached = () => probe.tokenPresent === true && probe.kek !== null;
    // Probed again only where a miss would make a ready node unready (in operation, in the set-up). In a
    // recovery the token or its KEK is missing for a while: probing again there only holds back the
    // beat that follows its end.
    const reprobes = isReady(this.surroundings?.lifecycleState() ?? '') ? REPROBE.times : 0;
    for (let again = 0; again < reprobes && !reached() && !PIN_REFUSED.has(probe.problem ?? ''); again++) {
      await new Promise((resolve) => setTimeout(resolve, outOfStep(REPROBE.intervalMs)));
      probe = await token.probe(undefined, kekId);
    }
    const refusedNow = PIN_REFUSED.has(probe.problem ?? '') ? pinTag : null;
    if (which === 'primary') this.refusedPin = refusedNow;
    else this.refusedSecondPin = refusedNow;
    if (reached()) return { tokenReachable: true, tokenProblem: null };
    return { tokenReachable: false, tokenProblem: probe.problem ?? (probe.tokenPresent === false ? 'TOKEN_MISSING' : 'KEK_MISSING') };
  }

  /** What this node sees now. Cheap when all is well: one row read per check, one token scan. */
  private async check(): Promise<NodeChecks> {
    const { store, custody, keyring, config } = this.runtime;
    const served = this.surroundings?.servedFingerprint() ?? null;
    const checks: NodeChecks = {
      databaseReachable: false,
      databaseVersion: null,
      nodeVersion: config.appVersion,
      tokenReachable: null,
      tokenProblem: null,
      dekLoaded: null,
      tlsCurrent: null,
      servedFingerprint: served,
      activeFingerprint: null,
    };
    try {
      checks.databaseVersion = await store.appVersion.get();
      checks.databaseReachable = true;
    } catch {
      return checks;
    }
    try {
      const hsm = isHsmStorage(await store.storage.storageType());
      const record = hsm ? await store.keyMaterial.current() : null;
      const token = hsm ? await custody.token() : null;
      // By the CKA_ID the stored wrap names, as BOOT's probe does. The probe rescans the module, so a
      // module that cannot be loaded or a token gone from it is seen here.
      if (token) Object.assign(checks, await this.checkToken(token, record?.wrapped?.kek.id || undefined));
      // The first token lost, a second KEK keeps the keyset: its token serving is this node reaching one.
      const second = checks.tokenReachable === false ? await store.secondKek.config() : null;
      const secondToken = second ? await custody.secondToken() : null;
      if (second && secondToken) {
        const reached = await this.checkToken(secondToken, second.kekId, 'second');
        if (reached.tokenReachable) Object.assign(checks, reached);
      }
      if (record?.wrapped) {
        const phase = phaseOf(this.surroundings?.lifecycleState() ?? '');
        // The DEK is loaded here only where the lifecycle holds one: never into a recovery in progress.
        if (checks.tokenReachable && keyring.current !== record.dekKeyId && (phase === 'operational' || phase === 'wizard')) {
          await (keyring.current === null ? custody.ensureDek() : custody.reloadKeyset()).catch(() => undefined);
        }
        checks.dekLoaded = keyring.current === record.dekKeyId;
      }
      checks.activeFingerprint = await store.tls.activeFingerprint();
      checks.tlsCurrent = checks.activeFingerprint === null || served === null ? null : checks.activeFingerprint === served;
    } catch (error) {
      // A read that failed half-way: the database went away under the checks.
      this.surroundings?.logger.warn({ error: (error as Error).message }, 'the node checks could not finish');
      checks.databaseReachable = false;
    }
    return checks;
  }
}
