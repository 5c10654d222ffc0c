import { INITIAL_CONTEXT, LifecycleContext, lifecycleMachine } from '../../../machines/lifecycle-machine';
import type { Snapshot } from './machine-steps';

/** The machine of a SoftHSM install resting at `value`, `context` laid over the initial one. */
export const softHsmAt = (value: unknown, context: Partial<LifecycleContext> = {}): Snapshot =>
  lifecycleMachine.resolveState({ value: value as never, context: { ...INITIAL_CONTEXT, storageType: 'softhsm', ...context } });

/** A SoftHSM install past its wizard, serving. */
export const operational = (context: Partial<LifecycleContext> = {}): Snapshot => softHsmAt('operational', { wizardCompleted: true, ...context });

export { healthyStartup } from './healthy-startup';
