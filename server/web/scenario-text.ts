import type { StartupScenario } from '../../machines/startup-scenario';

/**
 * The start-up scenario in words, for the status and outage pages: what the last start found and
 * what keyward did about it (the code stays beside it as a detail). The first start of an install
 * that has not restarted since shows its set-up's scenario, which is nothing to worry about.
 */
export const SCENARIO_SENTENCES: Readonly<Record<StartupScenario, string>> = {
  DB_NOT_INITIALIZED: 'The last start found an empty database: keyward created its tables and ran the set-up. This is normal until keyward restarts for the first time after its set-up.',
  DB_INITIALIZED_NO_VERSION: 'The last start found keyward’s tables without a version record (an interrupted first start, or a database prepared by hand): keyward completed them and ran the set-up.',
  VERSION_DOWNGRADE: 'The database was last used by a newer keyward (or records a version this one cannot read): keyward refused to start and changed nothing.',
  VERSION_UPGRADE: 'The database was last used by an older keyward: it was migrated to this version at start-up.',
  VERSION_MATCH: 'The database and this keyward are at the same version.',
  RESTORE_SOFTWARE_WIZARD_COMPLETED: 'A normal restart of a set-up installation with software storage: there is no key to unlock, so keyward went straight back to operation.',
  RESTORE_SOFTWARE_WIZARD_INCOMPLETE: 'A restart before the set-up was finished (software storage, or no storage chosen yet): the set-up goes on where it was.',
  RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED:
    'At the last start the key-encryption key (or the whole SoftHSM token) was gone and a backup copy of the data key exists: keyward started auto-restore, which asks for the backup password.',
  RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED: 'A normal restart: the KEK in the SoftHSM token unwrapped the data key, and keyward went back to operation.',
  RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_NOT_CACHED:
    'At the last start the SoftHSM token could not unwrap the data key: keyward started auto-restore with the backup password, or stopped when the token itself could not be used or no backup copy exists.',
  RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_CACHED: 'A restart before the set-up was finished (SoftHSM storage, the data key already made): the set-up goes on where it was.',
  RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED: 'A restart before the set-up was finished (SoftHSM storage, no data key yet): the set-up goes on where it was.',
  RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_CACHED: 'A normal restart: the KEK in the HSM unwrapped the data key, and keyward went back to operation.',
  RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED:
    'At the last start the HSM could not unwrap the data key: an HSM out of reach is waited for and tried again automatically; a KEK that is gone leads to auto-restore with the backup password.',
  RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_CACHED: 'A restart before the set-up was finished (physical HSM, the data key already made): the set-up goes on where it was.',
  RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED: 'A restart before the set-up was finished (physical HSM, no data key yet): the set-up goes on where it was.',
};

export function describeScenario(code: string | null | undefined): string | null {
  return code && Object.hasOwn(SCENARIO_SENTENCES, code) ? SCENARIO_SENTENCES[code as StartupScenario] : null;
}
