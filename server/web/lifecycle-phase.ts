import { tagsOfState } from '../../machines/state-names';

/**
 * Where the lifecycle is, as the web sees it: running the first set-up, recovering after a lost
 * token or KEK, serving, or none of these (booting, an outage, failed, unrecoverable, refused).
 */
export type Phase = 'wizard' | 'autoRestore' | 'operational' | 'unavailable';

/** The phase is a tag of the machine's state (machines/lifecycle-machine.ts), not read from its name. */
export function phaseOf(state: string): Phase {
  const tags = tagsOfState(state);
  if (tags.has('wizard')) return 'wizard';
  if (tags.has('autoRestore')) return 'autoRestore';
  if (tags.has('operational')) return 'operational';
  return 'unavailable';
}

/** /readyz: serving its purpose (the wizard, or operation); not while booting or waiting for a password. */
export function isReady(state: string): boolean {
  const phase = phaseOf(state);
  return phase === 'wizard' || phase === 'operational';
}

/** Phases in which the set-up code (or, in auto-restore, an admin login) opens the wizard pages. */
export function isSetupPhase(phase: Phase): boolean {
  return phase === 'wizard' || phase === 'autoRestore';
}
