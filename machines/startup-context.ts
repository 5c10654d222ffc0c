import type { StorageType } from '../hsm/storage-type';

/**
 * What start-up probes before every BOOT. Each field names what was actually checked,
 * in the process that will serve: `dekAvailable` means the stored wrapped DEK unwrapped with the
 * KEK just now, not that some cache somewhere might hold it.
 */
export interface StartupContext {
  dbInitialized: boolean;
  dbVersion: string | null;
  appVersion: string;
  /** Migrations this keyward has that the database has not: an upgrade even at the same version. */
  schemaPending: boolean;
  wizardCompleted: boolean;
  storageType: StorageType | null;
  /** HSM storage only (null otherwise): a token with the configured label is visible in the module. */
  tokenPresent: boolean | null;
  /** HSM storage only: the KEK that wrapped the stored DEK is in the token (label found, CKA_ID matches). */
  kekPresent: boolean | null;
  /** HSM storage only: the wrapped DEK unwrapped with the KEK in this process. */
  dekAvailable: boolean | null;
  backupCopyPresent: boolean;
  /** A condition that stopped the probe short of an answer (e.g. WRONG_PIN, MODULE_MISSING), or null. */
  tokenProblem: string | null;
  /** The transition log's hash chain as verified now: the first broken revision, or null. */
  logBrokenAt: number | null;
  logProblem: string | null;
  probedAt: string;
  /**
   * With a second KEK configured (absent otherwise): whether each KEK unwrapped its copy of every
   * live DEK at this probe. `dekAvailable` is true when either did.
   */
  kekHealth?: { primary: boolean; second: boolean };
}
