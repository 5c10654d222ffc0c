import { hostname } from 'node:os';
import { getNextTransitions, StateValue, transition } from 'xstate';
import { ChainKey, UNKEYED_CHAIN } from '../db/audit-chain';
import { KeywardError } from '../errors/keyward-error';
import { LifecycleConflictError, LifecycleRepository, TransitionEntry, TransitionRow } from '../db/repositories/lifecycle-repository';
import type { EffectError, EffectName, EffectProgress, EffectRunner } from '../machines/effect-signatures';
import { EVENT_TYPES, LifecycleEvent, loggablePayload } from '../machines/events';
import { EffectOutcomeEvent, INITIAL_CONTEXT, LifecycleContext, lifecycleMachine, MACHINE_VERSION } from '../machines/lifecycle-machine';
import { migrateSnapshot } from '../machines/snapshot-migrations';
import { describeRefusal, stateString, wizardStateOf } from '../machines/state-names';
import { redact } from './redact';
import type { SecretBox } from './secret-box';

export type { EffectContext, EffectRunner } from '../machines/effect-signatures';

type Snapshot = ReturnType<typeof lifecycleMachine.resolveState>;

export interface EffectOwner {
  host: string;
  pid: number;
  /** The BOOT lease its process held while running it: the effect lives exactly as long as that lease. */
  lease?: string;
}

export interface PendingEffect {
  id: string;
  src: EffectName;
  input: unknown;
  owner: EffectOwner;
  startedAt: string;
}

/** What the database keeps of the machine: no secret is ever in it. */
export interface PersistedLifecycle {
  value: unknown;
  context: LifecycleContext;
  pendingEffect: PendingEffect | null;
}

export type SendOutcome = 'applied' | 'rejected' | 'refused' | 'conflict' | 'startup_refused';

export interface SendResult {
  outcome: SendOutcome;
  /** The event's effect replaced the whole store (a restore): the caller must BOOT next. */
  bootRequired?: boolean;
  state: string;
  wizardState: string | null;
  /** Another process's BOOT decided the state while this one waited for the lease: nothing was sent. */
  followed?: boolean;
  /** The start-up scenario the machine classified (a refused start-up's too, which is not persisted). */
  scenario?: string | null;
  revision: number | null;
  /** For refused and conflict: why; for rejected: the effect's error. */
  message: string | null;
  error: EffectError | null;
}

export interface Inspection {
  state: string;
  wizardState: string | null;
  scenario: string | null;
  versionScenario: string | null;
  accepts: string[];
  revision: number | null;
  machineVersion: number;
  pendingEffect: PendingEffect | null;
  context: LifecycleContext;
  history: TransitionRow[];
}

export class LifecycleStateError extends KeywardError {
  constructor(message: string) {
    super('LIFECYCLE_UNREADABLE', message);
    this.name = 'LifecycleStateError';
  }
}

export class LifecycleBusyError extends KeywardError {
  constructor(readonly pending: PendingEffect) {
    super(
      'BUSY',
      `keyward is busy: effect ${pending.src} is running in process ${pending.owner.pid} on ${pending.owner.host} since ${pending.startedAt}; nothing was changed: wait for it and try again`,
    );
    this.name = 'LifecycleBusyError';
  }
}

interface Loaded {
  revision: number | null;
  chainHead: string | null;
  snapshot: Snapshot;
  pendingEffect: PendingEffect | null;
  tablesExist: boolean;
}

export interface EngineOptions {
  repository: LifecycleRepository;
  effects: EffectRunner;
  deployment?: string;
  clock?: () => Date;
  owner?: EffectOwner;
  /** Told how far a long effect has come. */
  onProgress?: (effect: EffectName, report: EffectProgress) => void;
  /** Called at each effect checkpoint (crash tests hang there); a no-op by default. */
  onCheckpoint?: (name: string) => Promise<void>;
  /** How long BOOT waits for an effect that a live process is running. */
  busyWaitMs?: number;
  /** The key the transition log is chained under now (derived from the DEK where there is one). */
  chainKey?: () => Promise<ChainKey>;
  /** Told each lifecycle version ("revision:chain head", null before the first) read or committed. */
  onVersion?: (version: string | null) => void;
  /** Whether a BOOT lease is still held (an effect recorded under it is running); without it, leases count as held. */
  leaseHeld?: (lease: string) => Promise<boolean>;
}

export interface SendOptions {
  source: string;
  secrets: SecretBox;
  /** The BOOT lease this process holds for the event: its effects are recorded under it. */
  lease?: string;
}

const CONFLICT_RETRIES = 5;

/**
 * Applies events to the persisted lifecycle machine, one at a time per deployment: loads the
 * snapshot, computes the transition purely, commits it with its log row (compare-and-swap on the
 * revision) before any effect starts, runs the effect, feeds its outcome back, commits again — so
 * the state that records an effect is in the database before the next one begins.
 */
export class LifecycleEngine {
  readonly deployment: string;
  private readonly clock: () => Date;
  private readonly owner: EffectOwner;
  private queue: Promise<void> = Promise.resolve();
  private tablesSeen = false;
  /**
   * The snapshot as this process last read or committed it: an event starts from it instead of
   * reading the row back. Another writer is caught by the revision compare-and-swap at commit; a
   * refusal from it is checked against a fresh read.
   */
  private last: Loaded | null = null;

  constructor(private readonly options: EngineOptions) {
    this.deployment = options.deployment ?? 'default';
    this.clock = options.clock ?? (() => new Date());
    this.owner = options.owner ?? { host: hostname(), pid: process.pid };
  }

  /** One event at a time in this process; other processes are kept in line by the revision CAS. */
  async send(event: LifecycleEvent, options: SendOptions): Promise<SendResult> {
    return this.exclusive(() => this.sendWithRetries(event, options));
  }

  private running = 0;

  /** An event (or exclusive work) of this process is under way or waiting. */
  get busy(): boolean {
    return this.running > 0;
  }

  /** Runs work that must not interleave with any event of this process (a restore). */
  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    this.running += 1;
    const run = this.queue.then(work).finally(() => (this.running -= 1));
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async sendWithRetries(event: LifecycleEvent, options: SendOptions): Promise<SendResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.sendOnce(event, options);
      } catch (error) {
        // Only a conflict before any effect ran is retried: nothing has happened yet.
        if (error instanceof FirstCommitConflict && attempt < CONFLICT_RETRIES) continue;
        if (error instanceof FirstCommitConflict || error instanceof LifecycleConflictError) {
          const loaded = await this.load().catch(() => null);
          return this.result('conflict', loaded?.snapshot ?? null, loaded?.revision ?? null, error.message, null);
        }
        throw error;
      }
    }
  }

  private async sendOnce(event: LifecycleEvent, options: SendOptions): Promise<SendResult> {
    const remembered = this.last;
    let loaded = remembered ?? (await this.load());
    if (loaded.pendingEffect) loaded = await this.settlePending(loaded, event, options.lease);
    const before = loaded.snapshot;
    if (!before.can(event)) {
      if (loaded === remembered) return this.sendFresh(event, options);
      return this.result('refused', before, loaded.revision, describeRefusal(before, event), null);
    }
    const startError = before.context.lastError;
    let [current, actions] = transition(lifecycleMachine, before, event);
    if (isNotPersisted(current)) {
      if (loaded === remembered) return this.sendFresh(event, options);
      return this.result('startup_refused', current, loaded.revision, current.context.reason, null);
    }
    // Until this event's last commit, the remembered snapshot is not the persisted one.
    this.last = null;

    let revision = loaded.revision;
    let chainHead = loaded.chainHead;
    // Until the migration has run, the lifecycle tables may lack columns this keyward writes:
    // transitions wait in memory, as they do before the schema exists at all.
    let tablesExist = loaded.tablesExist && !(event.type === 'BOOT' && event.startup.schemaPending);
    const buffered: TransitionEntry[] = [];
    let entry = this.entry(event.type, options.source, before, current, loggablePayload(event));
    let first = true;

    for (;;) {
      const spawn = actions.find((a) => a.type === 'xstate.spawnChild') as { params: { id: string; src: EffectName; input: unknown } } | undefined;
      const owner = options.lease ? { ...this.owner, lease: options.lease } : this.owner;
      const pending: PendingEffect | null = spawn ? { id: spawn.params.id, src: spawn.params.src, input: spawn.params.input, owner, startedAt: this.clock().toISOString() } : null;
      buffered.push(entry);
      if (tablesExist) {
        try {
          const chainKey = (await this.options.chainKey?.()) ?? UNKEYED_CHAIN;
          ({ revision, chainHead } = await this.options.repository.commit(
            this.deployment,
            revision,
            { machineVersion: MACHINE_VERSION, snapshot: persisted(current, pending), state: stateString(current) },
            buffered,
            chainKey,
            chainHead,
          ));
        } catch (error) {
          if (first && error instanceof LifecycleConflictError) throw new FirstCommitConflict(error.message);
          throw error;
        }
        this.options.onVersion?.(`${revision}:${chainHead}`);
        buffered.length = 0;
      }
      first = false;
      if (!pending) break;

      let outcome: EffectOutcomeEvent;
      const checkpoint = async (name: string) => this.options.onCheckpoint?.(`${pending.src}:${name}`);
      try {
        await checkpoint('start');
        const progress = (report: EffectProgress) => this.options.onProgress?.(pending.src, report);
        const output = await this.options.effects.run(pending.src, pending.input, { secrets: options.secrets, checkpoint, progress });
        // Done but not yet recorded: the window a crash test must cover too.
        await checkpoint('finished');
        outcome = { type: `xstate.done.actor.${pending.id}`, output, at: this.clock().toISOString() };
      } catch (error) {
        outcome = { type: `xstate.error.actor.${pending.id}`, error: this.options.effects.describeError(error), at: this.clock().toISOString() };
      }
      const previous = current;
      [current, actions] = transition(lifecycleMachine, current, outcome);
      // A restored store has its own lifecycle and log: nothing more of this event goes into it.
      if (current.hasTag('bootRequired')) {
        return { ...this.result('applied', current, null, 'the store was replaced from a backup: BOOT decides what follows', null), bootRequired: true };
      }
      const result = 'error' in outcome ? { error: outcome.error } : { output: redact(outcome.output) };
      entry = this.entry(`${pending.src}:${'error' in outcome ? 'error' : 'done'}`, 'effect', previous, current, result);
      if (!tablesExist) tablesExist = this.tablesSeen = await this.options.repository.schemaCurrent();
    }

    if (tablesExist && buffered.length === 0) this.last = { revision, chainHead, snapshot: current, pendingEffect: null, tablesExist };
    const error = current.context.lastError && current.context.lastError !== startError ? current.context.lastError : null;
    return this.result(error ? 'rejected' : 'applied', current, revision, error?.message ?? null, error);
  }

  async inspect(options: { historyLimit?: number } = {}): Promise<Inspection> {
    const loaded = await this.load();
    const snapshot = loaded.snapshot;
    const history = loaded.tablesExist ? await this.options.repository.history(this.deployment, { limit: options.historyLimit ?? 20 }) : [];
    return {
      state: stateString(snapshot),
      wizardState: wizardStateOf(snapshot),
      scenario: snapshot.context.restoreScenario ?? snapshot.context.versionScenario,
      versionScenario: snapshot.context.versionScenario,
      accepts: acceptedEvents(snapshot),
      revision: loaded.revision,
      machineVersion: MACHINE_VERSION,
      pendingEffect: loaded.pendingEffect,
      context: snapshot.context,
      history,
    };
  }

  /** A refusal decided on the remembered snapshot stands only if the persisted one says the same. */
  private async sendFresh(event: LifecycleEvent, options: SendOptions): Promise<SendResult> {
    this.last = null;
    return this.sendOnce(event, options);
  }

  /** The persisted snapshot (read now), resolved against this machine; a state that no longer exists fails loudly. */
  async load(): Promise<Loaded> {
    this.last = null;
    const loaded = await this.read();
    // Only the newest reading may be remembered: an event of this process may have committed meanwhile.
    if (loaded.tablesExist && loaded.revision !== null) this.last ??= loaded;
    this.options.onVersion?.(loaded.revision === null ? null : `${loaded.revision}:${loaded.chainHead}`);
    return loaded;
  }

  private async read(): Promise<Loaded> {
    const repository = this.options.repository;
    // Once the schema exists it stays: asking again on every event would cost two queries each.
    const tablesExist = this.tablesSeen || (this.tablesSeen = await repository.tablesExist());
    const stored = tablesExist ? await repository.load(this.deployment) : null;
    if (!stored) {
      return { revision: null, chainHead: null, snapshot: lifecycleMachine.resolveState({ value: 'unbooted', context: INITIAL_CONTEXT }), pendingEffect: null, tablesExist };
    }
    if (stored.machineVersion > MACHINE_VERSION) {
      throw new LifecycleStateError(`the persisted lifecycle is from machine version ${stored.machineVersion}, newer than this keyward's ${MACHINE_VERSION}: upgrade keyward`);
    }
    let data: PersistedLifecycle;
    try {
      data = migrateSnapshot(stored.machineVersion, stored.snapshot, MACHINE_VERSION) as PersistedLifecycle;
    } catch (error) {
      throw new LifecycleStateError(`the persisted lifecycle cannot be read: ${(error as Error).message}`);
    }
    let snapshot: Snapshot;
    try {
      snapshot = lifecycleMachine.resolveState({ value: data.value as StateValue, context: { ...INITIAL_CONTEXT, ...data.context } });
    } catch (error) {
      throw new LifecycleStateError(
        `the persisted lifecycle state ${JSON.stringify(data.value)} (machine version ${stored.machineVersion}) does not exist in this machine: ${(error as Error).message}. Add a snapshot migration (machines/snapshot-migrations.ts)`,
      );
    }
    return { revision: stored.revision, chainHead: stored.chainHead, snapshot, pendingEffect: data.pendingEffect ?? null, tablesExist };
  }

  /**
   * An effect recorded as running. If its process is alive, BOOT waits for it and other events are
   * refused as busy; if the process died, the effect was interrupted and BOOT (which re-probes what
   * really happened) may proceed. An effect run under a BOOT lease is alive exactly while that lease
   * is held: an expired one means its holder died, and BOOT proceeds at once.
   */
  private async settlePending(loaded: Loaded, event: LifecycleEvent, lease: string | undefined): Promise<Loaded> {
    const deadline = Date.now() + (this.options.busyWaitMs ?? 30_000);
    let current = loaded;
    while (current.pendingEffect && (await this.alive(current.pendingEffect.owner, lease))) {
      if (event.type !== 'BOOT') throw new LifecycleBusyError(current.pendingEffect);
      // A stuck effect must not block start-up for ever: after the wait, BOOT re-probes regardless.
      if (Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
      current = await this.load();
    }
    if (current.pendingEffect && event.type !== 'BOOT') throw new LifecycleBusyError(current.pendingEffect);
    return current;
  }

  private async alive(owner: EffectOwner, lease: string | undefined): Promise<boolean> {
    if (owner.lease === undefined) return isAlive(owner, this.owner);
    // Sends are serialized in a process: an effect under the lease this event holds is a finished attempt's.
    if (owner.lease === lease) return false;
    return this.options.leaseHeld ? this.options.leaseHeld(owner.lease) : isAlive(owner, this.owner);
  }

  private entry(eventType: string, source: string, from: Snapshot, to: Snapshot, payload: Record<string, unknown>): TransitionEntry {
    return { eventType, source, fromState: stateString(from), toState: stateString(to), payload: redact(payload) as Record<string, unknown>, at: this.clock().toISOString() };
  }

  private result(outcome: SendOutcome, snapshot: Snapshot | null, revision: number | null, message: string | null, error: EffectError | null): SendResult {
    return {
      outcome,
      state: snapshot ? stateString(snapshot) : 'unknown',
      wizardState: snapshot ? wizardStateOf(snapshot) : null,
      scenario: snapshot ? (snapshot.context.restoreScenario ?? snapshot.context.versionScenario) : null,
      revision,
      message,
      error,
    };
  }
}

class FirstCommitConflict extends KeywardError {
  constructor(message: string) {
    super('CONFLICT', message);
  }
}

function persisted(snapshot: Snapshot, pendingEffect: PendingEffect | null): PersistedLifecycle {
  return { value: snapshot.value, context: snapshot.context, pendingEffect };
}

function isNotPersisted(snapshot: Snapshot): boolean {
  return Object.values(snapshot.getMeta()).some((meta) => (meta as { persist?: boolean } | undefined)?.persist === false);
}

/** Event types with a transition from the current state (guards may still refuse one, with a reason). */
export function acceptedEvents(snapshot: Snapshot): string[] {
  const types = new Set(getNextTransitions(snapshot).map((t) => t.eventType as string));
  return EVENT_TYPES.filter((type) => types.has(type));
}

function isAlive(owner: EffectOwner, self: EffectOwner): boolean {
  if (owner.host !== self.host) return true; // another host: cannot tell, assume alive until BOOT's wait ends
  // Sends are serialized in a process, so an effect recorded under our own pid is a dead
  // predecessor's (containers reuse pid 1).
  if (owner.pid === self.pid) return false;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
