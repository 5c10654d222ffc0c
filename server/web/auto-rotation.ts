import { isHsmStorage } from '../../hsm/storage-type';
import type { Inspection } from '../lifecycle-engine';
import { dueOnlyFromItsRotation, nextRotation, rotationsDue } from '../rotation-policy';
import { phaseOf } from './lifecycle-phase';
import type { WebDeps } from './web-deps';
import { loggableError } from './web-errors';

/**
 * What `keyward start` does for the key lifecycle on its own (docs/lifecycle.md "Key rotation"):
 * finishes a rotation that a crash interrupted, and, with KEYWARD_AUTO_ROTATE=on, starts the
 * rotation the policy says is due. Both go through the one RotationRunner, so there is never more
 * than one rotation at a time in this process (another process's is refused by the engine as busy).
 */
export class AutoRotation {
  private timer: NodeJS.Timeout | null = null;
  private checking = false;
  private warnedLimit = false;

  constructor(private readonly deps: WebDeps) {}

  /** Operational (after BOOT, or after an auto-restore) with a rotation still recorded: it is resumed in the background (source `boot`). */
  resumeInterrupted(inspection: Inspection | null): boolean {
    const rotation = inspection?.context.keyRotation;
    // Only from `operational` itself: while a rotation runs the machine is in its rotating state.
    if (!inspection || !rotation || inspection.state !== 'operational' || this.deps.rotations.current) return false;
    const type = rotation.kind === 'kek' ? 'ROTATE_KEK' : 'ROTATE_DEK';
    if (!inspection.accepts.includes(type)) return false;
    this.deps.logger.warn({ kind: rotation.kind, step: rotation.step, newKeyId: rotation.newKeyId, startedAt: rotation.startedAt }, 'an interrupted key rotation is resumed');
    return this.deps.rotations.start(rotation.kind, 'boot').started;
  }

  /** With auto-rotation on: asks the policy every interval while operational (an unref'd timer). */
  start(): void {
    const policy = this.deps.runtime.config.rotation;
    if (!policy.autoRotate || this.timer) return;
    this.timer = setInterval(() => void this.deps.work.track(this.check()), policy.checkIntervalSeconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One look at the policy; starts the due rotation unless one is running or recorded. Returns the kind started. */
  async check(): Promise<'kek' | 'dek' | null> {
    const { deps } = this;
    if (this.checking || deps.rotations.current) return null;
    this.checking = true;
    try {
      const inspection = deps.watcher.healthy ? deps.watcher.current : null;
      // A rotation recorded as under way is the boot's (or the operator's) to finish, not a new one's.
      if (!inspection || phaseOf(inspection.state) !== 'operational' || inspection.context.keyRotation) return null;
      const { store, config } = deps.runtime;
      if (!isHsmStorage(await store.storage.storageType())) return null;
      const keyset = await store.keyMaterial.keyset();
      const due = rotationsDue(keyset, new Date(), config.rotation);
      let kind = nextRotation(due);
      if (
        kind === 'dek' &&
        dueOnlyFromItsRotation(
          due,
          keyset.find((record) => record.state === 'primary'),
          await store.reencryption.status(),
          config.rotation,
        )
      ) {
        if (!this.warnedLimit) {
          this.warnedLimit = true;
          deps.logger.warn(
            { limit: config.rotation.dekMaxEncryptions },
            'KEYWARD_DEK_MAX_ENCRYPTIONS is below the number of stored secret values: the DEK is due only because its rotation re-encrypted them, so it is not rotated again (raise the limit)',
          );
        }
        kind = null;
      }
      if (!kind) return null;
      const type = kind === 'kek' ? 'ROTATE_KEK' : 'ROTATE_DEK';
      if (!inspection.accepts.includes(type)) return null;
      deps.logger.warn(
        { kind, due: due.map((item) => ({ key: item.key, reason: item.reason, keyId: item.keyId })) },
        `rotation due: the ${kind.toUpperCase()} is rotated automatically (${due.find((item) => item.key === kind)!.message})`,
      );
      return deps.rotations.start(kind, 'policy').started ? kind : null;
    } catch (error) {
      deps.logger.error({ error: loggableError(error) }, 'the rotation policy could not be checked');
      return null;
    } finally {
      this.checking = false;
    }
  }
}
