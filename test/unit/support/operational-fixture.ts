import { INITIAL_CONTEXT, LifecycleContext, lifecycleMachine } from '../../../machines/lifecycle-machine';
import type { StartupContext } from '../../../machines/startup-context';
import { AT, Snapshot } from './machine-steps';

/** The machine of a SoftHSM install resting at `value`, `context` laid over the initial one. */
export const softHsmAt = (value: unknown, context: Partial<LifecycleContext> = {}): Snapshot =>
  lifecycleMachine.resolveState({ value: value as never, context: { ...INITIAL_CONTEXT, storageType: 'softhsm', ...context } });

/** A SoftHSM install past its wizard, serving. */
export const operational = (context: Partial<LifecycleContext> = {}): Snapshot => softHsmAt('operational', { wizardCompleted: true, ...context });

/** What a BOOT's probe finds on a healthy SoftHSM install: token, KEK, DEK and backup copy all there. */
export const healthyStartup = (overrides: Partial<StartupContext> = {}): StartupContext => ({
  dbInitialized: true,
  dbVersion: '1.0.0',
  appVersion: '1.0.0',
  schemaPending: false,
  wizardCompleted: true,
  storageType: 'softhsm',
  tokenPresent: true,
  kekPresent: true,
  dekAvailable: true,
  backupCopyPresent: true,
  tokenProblem: null,
  logBrokenAt: null,
  logProblem: null,
  probedAt: AT,
  ...overrides,
});
