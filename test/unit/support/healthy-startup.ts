import type { StartupContext } from '../../../machines/startup-context';

/**
 * What a BOOT's probe finds on a healthy SoftHSM install: token, KEK, DEK and backup copy all there.
 * Apart from the machine fixtures, so a test of something other than the machine loads no machine.
 */
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
  probedAt: '2026-01-01T00:00:00.000Z',
  ...overrides,
});
