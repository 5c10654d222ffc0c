import type { StartupContext } from './startup-context';
import { parseVersion, compareVersions } from './version';

/** Trustpoint's StartupScenario: the names keyward keeps. */
export const VERSION_SCENARIOS = ['DB_NOT_INITIALIZED', 'DB_INITIALIZED_NO_VERSION', 'VERSION_DOWNGRADE', 'VERSION_UPGRADE', 'VERSION_MATCH'] as const;
export type VersionScenario = (typeof VERSION_SCENARIOS)[number];

export const RESTORE_SCENARIOS = [
  'RESTORE_SOFTWARE_WIZARD_COMPLETED',
  'RESTORE_SOFTWARE_WIZARD_INCOMPLETE',
  'RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED',
  'RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED',
  'RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_NOT_CACHED',
  'RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_CACHED',
  'RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED',
  'RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_CACHED',
  'RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED',
  'RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_CACHED',
  'RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED',
] as const;
export type RestoreScenario = (typeof RESTORE_SCENARIOS)[number];

export type StartupScenario = VersionScenario | RestoreScenario;

/** The first decision of every BOOT: the database and its version. */
export function versionScenario(ctx: StartupContext): VersionScenario {
  if (!ctx.dbInitialized) return 'DB_NOT_INITIALIZED';
  if (ctx.dbVersion === null) return 'DB_INITIALIZED_NO_VERSION';
  // A version this keyward cannot read is not one it may upgrade from: refuse, change nothing.
  if (!parseVersion(ctx.dbVersion)) return 'VERSION_DOWNGRADE';
  const order = compareVersions(ctx.dbVersion, ctx.appVersion);
  if (order > 0) return 'VERSION_DOWNGRADE';
  if (order < 0 || ctx.schemaPending) return 'VERSION_UPGRADE';
  return 'VERSION_MATCH';
}

/**
 * The second decision, once the database is current: Trustpoint's StartupStrategySelector as one
 * function. The new-KEK case is checked first and regardless of the wizard flag, because a restored
 * database may carry an inconsistent one. Storage not chosen yet counts as software (nothing is
 * encrypted before the choice).
 */
export function restoreScenario(ctx: StartupContext): RestoreScenario {
  const completed = ctx.wizardCompleted;
  if (ctx.storageType === 'softhsm') {
    if (isNewKek(ctx)) return 'RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED';
    if (completed) return ctx.dekAvailable ? 'RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED' : 'RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_NOT_CACHED';
    return ctx.dekAvailable ? 'RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_CACHED' : 'RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED';
  }
  if (ctx.storageType === 'physical_hsm') {
    if (completed) return ctx.dekAvailable ? 'RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_CACHED' : 'RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED';
    return ctx.dekAvailable ? 'RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_CACHED' : 'RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED';
  }
  return completed ? 'RESTORE_SOFTWARE_WIZARD_COMPLETED' : 'RESTORE_SOFTWARE_WIZARD_INCOMPLETE';
}

/** Trustpoint's is_new_kek_scenario: HSM storage, the KEK gone, the DEK not available, a backup copy to recover from. */
export function isNewKek(ctx: StartupContext): boolean {
  return ctx.storageType !== null && ctx.storageType !== 'software' && ctx.kekPresent === false && !ctx.dekAvailable && ctx.backupCopyPresent && ctx.tokenProblem === null;
}

/** The restore scenarios that lead back to operation: what a healthy operational install probes. */
const OPERATING_SCENARIOS: ReadonlySet<RestoreScenario> = new Set([
  'RESTORE_SOFTWARE_WIZARD_COMPLETED',
  'RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED',
  'RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_CACHED',
]);

/** Whether a BOOT with this context keeps an operational install in operation. */
export function keepsOperation(ctx: StartupContext): boolean {
  return OPERATING_SCENARIOS.has(restoreScenario(ctx));
}
