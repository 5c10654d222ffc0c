import type { SendResult } from '../lifecycle-engine';
import type { RotationKey } from '../rotation-policy';
import type { KeywardRuntime } from '../runtime';
import type { Logger } from './logger';
import { loggableError } from './web-errors';
import type { WorkTracker } from './work-tracker';

export interface RunningRotation {
  kind: RotationKey;
  /** Who asked: `web:<admin>`, `boot` (resuming an interrupted one), `policy` (auto-rotation). */
  source: string;
  startedAt: string;
}

export type RotationStart = { started: true; done: Promise<SendResult> } | { started: false; running: RunningRotation };

/**
 * Runs ROTATE_KEK or ROTATE_DEK in the background of this process, one at a time: a DEK rotation
 * re-encrypts every value and may take minutes, so no request waits for it. The engine applies one
 * event at a time per process, so a second rotation asked for meanwhile would only queue behind the
 * first and then start again from scratch; it is refused here instead. The work is tracked, so a
 * graceful shutdown waits for the rotation (and a crash is finished by the next start).
 */
export class RotationRunner {
  private running: (RunningRotation & { done: Promise<SendResult> }) | null = null;

  constructor(
    private readonly runtime: KeywardRuntime,
    private readonly work: WorkTracker,
    private readonly logger: Logger,
    /** Called when a rotation has ended, so the watcher reads the new state at once. */
    private readonly afterRotation: () => Promise<unknown>,
  ) {}

  get current(): RunningRotation | null {
    return this.running && { kind: this.running.kind, source: this.running.source, startedAt: this.running.startedAt };
  }

  start(kind: RotationKey, source: string): RotationStart {
    if (this.running) return { started: false, running: this.current! };
    const type = kind === 'kek' ? 'ROTATE_KEK' : 'ROTATE_DEK';
    const startedAt = new Date().toISOString();
    this.logger.info({ event: type, source }, `${kind.toUpperCase()} rotation started`);
    const done = this.work.track(
      (async (): Promise<SendResult> => {
        try {
          const result = await this.runtime.send(type, {}, {}, source);
          const fields = { event: type, source, outcome: result.outcome, state: result.state, revision: result.revision, errorCode: result.error?.code ?? null };
          if (result.outcome === 'applied') this.logger.info(fields, `${kind.toUpperCase()} rotation finished`);
          else this.logger.warn({ ...fields, message: result.message }, `${kind.toUpperCase()} rotation did not finish`);
          return result;
        } catch (error) {
          this.logger.error({ event: type, source, error: loggableError(error) }, `${kind.toUpperCase()} rotation failed`);
          throw error;
        } finally {
          this.running = null;
          await this.afterRotation().catch(() => undefined);
        }
      })(),
    );
    this.running = { kind, source, startedAt, done };
    return { started: true, done };
  }

  /** Resolves when the rotation running now (if any) has ended, however it ended. */
  async settled(): Promise<void> {
    await this.running?.done.catch(() => undefined);
  }
}
