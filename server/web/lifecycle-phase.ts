/**
 * Where the lifecycle is, as the web sees it: running the first set-up, recovering after a lost
 * token or KEK, serving, or none of these (booting, an outage, failed, unrecoverable, refused).
 */
export type Phase = 'wizard' | 'autoRestore' | 'operational' | 'unavailable';

export function phaseOf(state: string): Phase {
  if (state.startsWith('wizard.')) return 'wizard';
  if (state.startsWith('autoRestore.')) return 'autoRestore';
  if (state === 'operational') return 'operational';
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
