import { LifecycleListener, listenForLifecycleChanges } from '../../db/lifecycle-notifications';
import type { Inspection } from '../lifecycle-engine';
import type { KeywardRuntime } from '../runtime';
import type { Logger } from './logger';
import type { WebMetrics } from './metrics';
import { loggableError } from './web-errors';
import type { WorkTracker } from './work-tracker';

export type LifecycleObserver = (current: Inspection, previous: Inspection | null) => Promise<void> | void;

const HISTORY_PAGE = 1000;

/**
 * Re-reads the persisted lifecycle every interval, at once after this process sent an event, and on
 * PostgreSQL at once when any process commits (LISTEN/NOTIFY): another process (the CLI, another
 * replica) may have moved it. On a new revision it feeds the new
 * transition-log rows to the metrics and tells the observers (live TLS swap, set-up sessions,
 * the set-up code announcement). /readyz answers from the last reading.
 */
export class LifecycleWatcher {
  private latest: Inspection | null = null;
  private lastSuccess = 0;
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<Inspection | null> = Promise.resolve(null);
  private readonly observers: LifecycleObserver[] = [];
  private stopped = false;
  private listener: LifecycleListener | null = null;
  /** A notified reading is waiting to start: further notifications until it starts are covered by it. */
  private notifiedPending = false;

  constructor(
    private readonly runtime: KeywardRuntime,
    private readonly metrics: WebMetrics,
    private readonly logger: Logger,
    private readonly intervalMs: number,
    /** The revision before this process's BOOT: its effects count in the metrics too. */
    private seenRevision: number,
    private readonly work: WorkTracker,
  ) {}

  onChange(observer: LifecycleObserver): void {
    this.observers.push(observer);
  }

  get current(): Inspection | null {
    return this.latest;
  }

  /** False when the database has not answered for three intervals. */
  get healthy(): boolean {
    return Date.now() - this.lastSuccess <= this.intervalMs * 3 + 1000;
  }

  start(): void {
    this.stopped = false;
    // From now on the lifecycle's version is read every interval (and after each event): what only
    // events change may be kept in memory between versions.
    this.runtime.store.cache.enable(this.intervalMs * 3 + 1000);
    this.timer ??= setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref();
    this.listener ??= listenForLifecycleChanges(this.runtime.config.database, this.runtime.engine.deployment, () => this.pollNotified(), {
      onError: (error) => this.logger.warn({ error: loggableError(error) }, 'the lifecycle notification connection failed: reconnecting (polling meanwhile)'),
    });
  }

  private pollNotified(): void {
    if (this.notifiedPending || this.stopped) return;
    this.notifiedPending = true;
    void this.poll().catch(() => null);
  }

  /** No more readings; resolves when the one in progress (if any) has finished with the database. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.runtime.store.cache.disable();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.listener?.close();
    this.listener = null;
    await this.polling;
  }

  /** One reading at a time; a caller that asks during one waits for the next. */
  poll(): Promise<Inspection | null> {
    if (this.stopped) return Promise.resolve(this.latest);
    const run = this.polling.then(() => this.pollOnce());
    this.polling = this.work.track(run.catch(() => null));
    return run;
  }

  private async pollOnce(): Promise<Inspection | null> {
    this.notifiedPending = false;
    let inspection: Inspection;
    try {
      inspection = await this.runtime.engine.inspect({ historyLimit: 0 });
    } catch (error) {
      this.logger.warn({ error: loggableError(error) }, 'the lifecycle cannot be read');
      return null;
    }
    this.lastSuccess = Date.now();
    const previous = this.latest;
    this.latest = inspection;
    this.metrics.observeInspection(inspection);
    if (previous !== null && previous.revision === inspection.revision) return inspection;

    await this.recordHistory(inspection.revision ?? 0);
    if (previous?.state !== inspection.state) this.logger.info({ state: inspection.state, wizardState: inspection.wizardState, revision: inspection.revision }, 'lifecycle state');
    for (const observer of this.observers) {
      try {
        await observer(inspection, previous);
      } catch (error) {
        this.logger.error({ error: loggableError(error) }, 'a lifecycle observer failed');
      }
    }
    return inspection;
  }

  private async recordHistory(upTo: number): Promise<void> {
    const repository = this.runtime.store.lifecycle;
    if (!(await repository.tablesExist())) return;
    while (this.seenRevision < upTo) {
      // One row before the unseen ones: it times the first unseen effect.
      const rows = await repository.history(this.runtime.engine.deployment, { afterRevision: Math.max(0, this.seenRevision - 1), limit: HISTORY_PAGE });
      const fresh = rows.filter((row) => row.revision > this.seenRevision);
      if (fresh.length === 0) break;
      this.metrics.observeTransitions(rows, this.seenRevision);
      this.seenRevision = fresh[fresh.length - 1]!.revision;
    }
  }
}
