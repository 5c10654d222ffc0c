import { assertEvent, assign, fromPromise, setup } from 'xstate';
import { isHsmStorage, StorageType } from '../hsm/storage-type';
import type { EffectError, EffectInput, EffectName, EffectOutput, TlsSummary } from './effect-signatures';
import type { HsmType, LifecycleEvent } from './events';
import type { StartupContext } from './startup-context';
import { RestoreScenario, restoreScenario, VersionScenario, versionScenario } from './startup-scenario';

/**
 * keyward's whole lifecycle as one machine: every BOOT classifies the start-up scenario (the two
 * tables of docs/lifecycle.md), then the wizard, operation, and auto-restore after a lost KEK or token.
 * Pure: no I/O, no clock. Effects are named invokes that the lifecycle engine runs and persists
 * around; guards read only the context and the event.
 */
export const MACHINE_VERSION = 3;

export interface HsmChoice {
  hsmType: HsmType;
  modulePath: string;
  label: string;
  slot: number | null;
}

/**
 * A key rotation under way (docs/lifecycle.md "Key rotation"): which one, the step it has reached
 * and the new key's id once it exists, so that a BOOT or a retried event finishes it from there.
 */
export interface KeyRotation {
  kind: 'kek' | 'dek';
  step: KekRotationStep | DekRotationStep;
  /** The new KEK's CKA_ID (hex) or the new DEK's key id. */
  newKeyId: string | null;
  startedAt: string;
}
export type KekRotationStep = 'generating' | 'wrapping' | 'destroyingOldKek';
export type DekRotationStep = 'adding' | 'promoting' | 'reencrypting' | 'retiring';

/**
 * What the last set-up or recovery did, for its summary page (also after a reload): counts and
 * names, never a value. The keys, the token and the certificate served are read live.
 */
export interface CompletionSummary {
  kind: 'setup' | 'recovery';
  at: string;
  /** Recovery: the stored secret values opened with the recovered DEKs, and those that did not open. */
  secretValues?: SecretValueCheck;
  /** Recovery: the CAs deactivated because their keys were in the lost token. */
  deactivatedCas?: string[];
}
export interface SecretValueCheck {
  checked: number;
  readable: number;
  /** "table.column #id" of each value that did not open (at most a few). */
  unreadable: string[];
}

export interface LifecycleContext {
  startup: StartupContext | null;
  versionScenario: VersionScenario | null;
  restoreScenario: RestoreScenario | null;
  wizardCompleted: boolean;
  storageType: StorageType | null;
  hsm: HsmChoice | null;
  pendingTlsCredentialId: number | null;
  tls: TlsSummary | null;
  passwordFailures: number;
  lockedUntil: string | null;
  /** Why the last accepted event did not get where it asked to go (wrong password, failed script…). */
  lastError: (EffectError & { at: string }) | null;
  /** Why the machine sits in refused, failed, outage or unrecoverable. */
  reason: string | null;
  /** The broken log revision an operator has acknowledged, after which BOOT may go on. */
  acknowledgedLogBreak: number | null;
  /** The operator set a new token up in place of a lost one (confirming the loss); its CAs are not deactivated yet. */
  lostTokenCasPending: boolean;
  keyRotation: KeyRotation | null;
  /** An auto-restore under way: what it has found so far (absent in snapshots from before summaries). */
  recovery?: { deactivatedCas: string[]; secretValues: SecretValueCheck | null } | null;
  /** The last set-up or recovery that reached operation (absent in snapshots from before summaries). */
  lastCompletion?: CompletionSummary | null;
}

export const INITIAL_CONTEXT: LifecycleContext = {
  startup: null,
  versionScenario: null,
  restoreScenario: null,
  wizardCompleted: false,
  storageType: null,
  hsm: null,
  pendingTlsCredentialId: null,
  tls: null,
  passwordFailures: 0,
  lockedUntil: null,
  lastError: null,
  reason: null,
  acknowledgedLogBreak: null,
  lostTokenCasPending: false,
  keyRotation: null,
  recovery: null,
  lastCompletion: null,
};

/** Internal events: effect outcomes, as the engine feeds them back, stamped with `at`. */
type EffectDoneEvent = { type: `xstate.done.actor.${string}`; output: unknown; at: string };
type EffectErrorEvent = { type: `xstate.error.actor.${string}`; error: EffectError; at: string };
export type EffectOutcomeEvent = EffectDoneEvent | EffectErrorEvent;
type MachineEvent = LifecycleEvent | EffectOutcomeEvent;

/** Declares an effect's types for XState; the engine, not XState, runs it (with secrets beside the event). */
function effect<N extends EffectName>(name: N) {
  return fromPromise<EffectOutput<N>, EffectInput<N>>(async () => {
    throw new Error(`effect ${name} runs through the lifecycle engine`);
  });
}

/** Growing delay after the third wrong backup password: 30 s, 1 min, 2 min … capped at one hour. */
export function lockoutDelayMs(failures: number): number {
  if (failures < 3) return 0;
  return Math.min(30_000 * 2 ** (failures - 3), 3_600_000);
}

/**
 * What the machine's states say about where the lifecycle is; read through `snapshot.hasTag` or
 * `tagsOfState` instead of state-name prefixes. The first three are the web's phases.
 */
export type LifecycleTag = 'wizard' | 'autoRestore' | 'operational' | 'outage' | 'failed' | 'auditHold' | 'bootRequired';

/**
 * The token errors that, while unwrapping the stored DEK at start-up, mean "the DEK is not
 * available" (RESTORE_*_DEK_NOT_CACHED); any other is a token problem of its own (a PIN, the module),
 * which the guards below read from `tokenProblem`.
 */
const DEK_UNAVAILABLE_ERRORS: ReadonlySet<string> = new Set(['WRAPPED_BLOB_CORRUPT', 'KEK_REPLACED', 'KEK_MISSING', 'DEK_KEY_ID_MISMATCH']);
export function isTokenProblem(errorCode: string): boolean {
  return !DEK_UNAVAILABLE_ERRORS.has(errorCode);
}

const OUTAGE_PROBLEMS = new Set(['MODULE_MISSING', 'MODULE_LOAD_FAILED', 'TOKEN_UNREACHABLE', 'TOKEN_MISSING', 'PKCS11_ERROR']);
const MISCONFIGURATION_PROBLEMS = new Set(['WRONG_PIN', 'PIN_MISSING', 'PIN_LOCKED', 'MODULE_MISSING', 'MODULE_LOAD_FAILED', 'PKCS11_ERROR']);
const UNREADABLE_PROBLEMS = new Set(['TOKEN_UNREACHABLE', 'TOKEN_MISSING']);

/** An effect's output, from its done event (the invoke that sent it names its type). */
function outputOf<T>(event: MachineEvent): T {
  if (!('output' in event)) throw new Error(`${event.type} is not an effect's outcome`);
  return event.output as T;
}

const errorOf = (event: MachineEvent): EffectError => ('error' in event ? event.error : { code: 'EFFECT_FAILED', message: 'a step failed without saying why' });

/**
 * A step of the wizard or of auto-restore: run the effect, go on to `onDone`; a failure goes back to
 * the step's `waiting` state with the error recorded for the form.
 */
const stepEffect = <const S extends EffectName, const I, const D>(src: S, input: I, onDone: D) => ({ invoke: { src, input, onDone, onError: { target: 'waiting', actions: 'recordError' } } }) as const;

/** A start-up effect that fails sends the machine to `failed`, with the reason. */
const toFailed = { target: '#lifecycle.failed', actions: 'recordFailure' } as const;

/** The scenario table's "effects" column, as invokes: each names the state it leads to. */
const tlsFromDatabase = (next: string) =>
  ({ invoke: { src: 'loadTlsFromDatabase', input: {}, onDone: { target: next, actions: ['recordTls', 'resetPasswordFailures'] }, onError: toFailed } }) as const;
const newTls = (save: boolean, next: string) => ({ invoke: { src: 'issueTlsCredential', input: { save }, onDone: { target: next, actions: 'recordTls' }, onError: toFailed } }) as const;
/**
 * The keys of CAs that lived in a lost token are gone with it, whatever the password. Run only once
 * the operator has confirmed the loss by setting a new token up; a failure leaves the flag for the
 * password step to try again.
 */
const deactivateLostCas = (next: string) =>
  stepEffect(
    'deactivateTokenCas',
    ({ context }: { context: LifecycleContext }) => ({
      reason: context.storageType === 'physical_hsm' ? 'their keys were in the HSM token, which an operator declared lost' : 'their keys were in the HSM token, which was lost',
    }),
    { target: next, actions: ['clearLostTokenCas', 'recordDeactivatedCas'] },
  );
/** "This scenario holds: go to its state", the rows of the two classifying lists. */
const whenVersion = (name: VersionScenario) => ({ guard: { type: 'versionScenarioIs', params: { scenario: name } }, target: name }) as const;
const whenRestore = (name: RestoreScenario) => ({ guard: { type: 'restoreScenarioIs', params: { scenario: name } }, target: name }) as const;
const scenario = (name: RestoreScenario) => ({ type: 'recordRestoreScenario', params: { scenario: name } }) as const;

/** A rotation resumes at the step it reached: the `resuming` state's rows. */
const resumeAt = (step: KekRotationStep | DekRotationStep) => ({ guard: { type: 'rotationStepIs', params: { step } }, target: step }) as const;
/** A rotation step whose effect finished: record the next step (and the new key's id, once known). */
const rotationStep = <const S extends EffectName, const I>(src: S, input: I, next: KekRotationStep | DekRotationStep, onError: object) =>
  ({ invoke: { src, input, onDone: { target: next, actions: { type: 'recordRotationStep', params: { step: next } } }, onError } }) as const;
const newKeyIdInput = ({ context }: { context: LifecycleContext }) => ({ keyId: context.keyRotation!.newKeyId! });
const endRotation = { target: '#lifecycle.operational', actions: 'endRotation' } as const;
const recoveryShareCounts = ({ event }: { event: MachineEvent }) => {
  assertEvent(event, 'CREATE_RECOVERY_SHARES');
  return { shares: event.shares, threshold: event.threshold };
};

/** No schema, or no version row: migrate, record the version, a new TLS credential (saved), then the wizard. */
const initializeDatabase = (name: 'DB_NOT_INITIALIZED' | 'DB_INITIALIZED_NO_VERSION') =>
  ({
    entry: { type: 'recordVersionScenario', params: { scenario: name } },
    initial: 'migrating',
    states: {
      migrating: { invoke: { src: 'migrateDatabase', input: ({ context }: { context: LifecycleContext }) => ({ appVersion: context.startup!.appVersion }), onDone: 'issuingTls', onError: toFailed } },
      issuingTls: newTls(true, '#wizard'),
    },
  }) as const;

export const lifecycleMachine = setup({
  types: {
    context: {} as LifecycleContext,
    events: {} as MachineEvent,
    tags: {} as LifecycleTag,
  },
  actors: {
    migrateDatabase: effect('migrateDatabase'),
    issueTlsCredential: effect('issueTlsCredential'),
    loadTlsFromDatabase: effect('loadTlsFromDatabase'),
    deactivateTokenCas: effect('deactivateTokenCas'),
    recordStorageType: effect('recordStorageType'),
    setUpToken: effect('setUpToken'),
    createKek: effect('createKek'),
    createDek: effect('createDek'),
    generateTlsCredential: effect('generateTlsCredential'),
    importTlsPkcs12: effect('importTlsPkcs12'),
    importTlsFiles: effect('importTlsFiles'),
    applyTlsCredential: effect('applyTlsCredential'),
    setBackupPassword: effect('setBackupPassword'),
    addDemoData: effect('addDemoData'),
    createAdminUser: effect('createAdminUser'),
    recoverDek: effect('recoverDek'),
    restoreBackup: effect('restoreBackup'),
    generateNextKek: effect('generateNextKek'),
    wrapKeysetUnderKek: effect('wrapKeysetUnderKek'),
    destroyUnreferencedKeks: effect('destroyUnreferencedKeks'),
    addDek: effect('addDek'),
    promoteDek: effect('promoteDek'),
    reencryptValues: effect('reencryptValues'),
    retireOldDeks: effect('retireOldDeks'),
    checkSecretValues: effect('checkSecretValues'),
    changeBackupPassword: effect('changeBackupPassword'),
    changeTokenPin: effect('changeTokenPin'),
    addSecondKek: effect('addSecondKek'),
    removeSecondKek: effect('removeSecondKek'),
    wrapKeysetUnderPrimary: effect('wrapKeysetUnderPrimary'),
    createRecoveryShares: effect('createRecoveryShares'),
    collectRecoveryShare: effect('collectRecoveryShare'),
    recoverDekWithShares: effect('recoverDekWithShares'),
  },
  guards: {
    versionScenarioIs: ({ context }, params: { scenario: VersionScenario }) => context.startup !== null && versionScenario(context.startup) === params.scenario,
    restoreScenarioIs: ({ context }, params: { scenario: RestoreScenario }) => context.startup !== null && restoreScenario(context.startup) === params.scenario,
    storageIsHsm: ({ context }) => isHsmStorage(context.storageType),
    hsmTypeMatchesStorage: ({ context, event }) =>
      event.type === 'SETUP_HSM' && ((context.storageType === 'softhsm' && event.hsmType === 'softhsm') || (context.storageType === 'physical_hsm' && event.hsmType === 'physical')),
    tokenGone: ({ context }) => context.startup?.tokenPresent === false,
    lostTokenCasPending: ({ context }) => context.lostTokenCasPending,
    tokenUnreachable: ({ context }) => context.startup !== null && (context.startup.tokenPresent === false || OUTAGE_PROBLEMS.has(context.startup.tokenProblem ?? '')),
    tokenMisconfigured: ({ context }) => MISCONFIGURATION_PROBLEMS.has(context.startup?.tokenProblem ?? ''),
    // The probe could not read the token (it is not known to be gone): nothing to recover from yet.
    tokenUnreadable: ({ context }) => UNREADABLE_PROBLEMS.has(context.startup?.tokenProblem ?? ''),
    noBackupCopy: ({ context }) => context.startup?.backupCopyPresent !== true,
    lockedOut: ({ context, event }) => context.lockedUntil !== null && 'at' in event && event.at < context.lockedUntil,
    wrongPassword: ({ event }) => errorOf(event).code === 'WRONG_BACKUP_PASSWORD',
    // A share from another set, or shares that do not combine: a failed attempt like a wrong password.
    wrongShare: ({ event }) => errorOf(event).code === 'RECOVERY_SHARE_WRONG',
    sharesComplete: ({ event }) => {
      const output = 'output' in event ? (event.output as { collected?: number; threshold?: number }) : {};
      return output.collected !== undefined && output.threshold !== undefined && output.collected >= output.threshold;
    },
    physicalHsm: ({ context }) => context.storageType === 'physical_hsm',
    logBrokenUnacknowledged: ({ context }) => context.startup?.logBrokenAt != null && context.startup.logBrokenAt !== context.acknowledgedLogBreak,
    acknowledgesTheBreak: ({ context, event }) => event.type === 'ACKNOWLEDGE_LOG_BREAK' && event.revision === context.startup?.logBrokenAt,
    // Keys to rotate exist under HSM storage only; one rotation at a time (an unfinished one is resumed by its own event).
    mayRotateKek: ({ context }) => isHsmStorage(context.storageType) && context.keyRotation?.kind !== 'dek',
    mayRotateDek: ({ context }) => isHsmStorage(context.storageType) && context.keyRotation?.kind !== 'kek',
    rotationStepIs: ({ context }, params: { step: KekRotationStep | DekRotationStep }) => context.keyRotation?.step === params.step,
    // Software storage makes no key before the TLS credential: its set-up mode step may still go back.
    noKeyMade: ({ context }) => !isHsmStorage(context.storageType),
    // Operational from the second KEK: the first token (or its KEK) was lost, and a new one may replace it.
    primaryKekLost: ({ context, event }) =>
      context.startup?.kekHealth?.primary === false &&
      event.type === 'SETUP_HSM' &&
      ((context.storageType === 'softhsm' && event.hsmType === 'softhsm') || (context.storageType === 'physical_hsm' && event.hsmType === 'physical')),
  },
  actions: {
    recordBoot: assign(({ event }) => {
      if (event.type !== 'BOOT') return {};
      return { startup: event.startup, versionScenario: null, restoreScenario: null, lastError: null, reason: null, pendingTlsCredentialId: null };
    }),
    recordVersionScenario: assign((_, params: { scenario: VersionScenario }) => ({ versionScenario: params.scenario })),
    recordRestoreScenario: assign(({ context }, params: { scenario: RestoreScenario }) => ({
      restoreScenario: params.scenario,
      // The database is the source of truth for the storage type; the probe read it.
      storageType: context.startup?.storageType ?? context.storageType,
    })),
    clearError: assign({ lastError: null }),
    recordError: assign(({ event }) => ({ lastError: { ...errorOf(event), at: 'at' in event ? event.at : '' } })),
    recordReason: assign((_, params: { reason: string }) => ({ reason: params.reason })),
    // A sentence for the operator, the code as a detail.
    recordFailure: assign(({ event }) => ({ reason: `${errorOf(event).message} (${errorOf(event).code})` })),
    recordTokenReason: assign(({ context }) => ({
      reason: `the token "${context.hsm?.label ?? '?'}" cannot be used: ${context.startup?.tokenProblem ?? 'it is not reachable'}`,
    })),
    recordStorageChoice: assign(({ event }) => (event.type === 'SELECT_STORAGE' ? { storageType: event.storageType } : {})),
    recordHsmChoice: assign(({ event }) => {
      if (event.type !== 'SETUP_HSM') return {};
      return { hsm: { hsmType: event.hsmType, modulePath: event.modulePath, label: event.label, slot: event.slot } };
    }),
    recordTls: assign(({ event }) => ({ tls: outputOf<TlsSummary>(event) })),
    recordPendingTls: assign(({ event }) => ({ pendingTlsCredentialId: outputOf<{ credentialId: number }>(event).credentialId })),
    clearPendingTls: assign({ pendingTlsCredentialId: null }),
    recordLockedOut: assign(({ context, event }) => ({
      lastError: { code: 'LOCKED_OUT', message: `too many wrong backup passwords: try again after ${context.lockedUntil}`, at: 'at' in event ? event.at : '' },
    })),
    countPasswordFailure: assign(({ context, event }) => {
      const failures = context.passwordFailures + 1;
      const delay = lockoutDelayMs(failures);
      const at = 'at' in event ? event.at : new Date(0).toISOString();
      return {
        passwordFailures: failures,
        lockedUntil: delay > 0 ? new Date(Date.parse(at) + delay).toISOString() : null,
        lastError: { ...errorOf(event), at },
      };
    }),
    resetPasswordFailures: assign({ passwordFailures: 0, lockedUntil: null }),
    markWizardCompleted: assign({ wizardCompleted: true, pendingTlsCredentialId: null }),
    beginRotation: assign(({ context, event }, params: { kind: KeyRotation['kind'] }) => ({
      keyRotation:
        context.keyRotation?.kind === params.kind
          ? context.keyRotation
          : { kind: params.kind, step: params.kind === 'kek' ? ('generating' as const) : ('adding' as const), newKeyId: null, startedAt: 'at' in event ? event.at : '' },
    })),
    recordRotationStep: assign(({ context, event }, params: { step: KekRotationStep | DekRotationStep }) => {
      const output = 'output' in event ? (event.output as { keyId?: string }) : {};
      return { keyRotation: context.keyRotation && { ...context.keyRotation, step: params.step, newKeyId: output.keyId ?? context.keyRotation.newKeyId } };
    }),
    endRotation: assign({ keyRotation: null }),
    markLostTokenCas: assign({ lostTokenCasPending: true }),
    recordDeactivatedCas: assign(({ context, event }) => {
      const names = outputOf<{ names?: string[] }>(event).names ?? [];
      const recovery = context.recovery ?? { deactivatedCas: [], secretValues: null };
      return { recovery: { ...recovery, deactivatedCas: [...new Set([...recovery.deactivatedCas, ...names])] } };
    }),
    recordSecretValues: assign(({ context, event }) => ({
      recovery: { deactivatedCas: context.recovery?.deactivatedCas ?? [], secretValues: outputOf<SecretValueCheck>(event) },
    })),
    recordCompletion: assign(({ context, event }, params: { kind: CompletionSummary['kind'] }) => {
      const at = 'at' in event ? event.at : '';
      if (params.kind === 'setup') return { lastCompletion: { kind: 'setup' as const, at } };
      const recovery = context.recovery ?? { deactivatedCas: [], secretValues: null };
      return { recovery: null, lastCompletion: { kind: 'recovery' as const, at, deactivatedCas: recovery.deactivatedCas, ...(recovery.secretValues ? { secretValues: recovery.secretValues } : {}) } };
    }),
    markPrimaryKekRestored: assign(({ context }) => ({ startup: context.startup && { ...context.startup, kekHealth: { primary: true, second: context.startup.kekHealth?.second ?? true } } })),
    clearLostTokenCas: assign({ lostTokenCasPending: false }),
  },
}).createMachine({
  id: 'lifecycle',
  initial: 'unbooted',
  context: INITIAL_CONTEXT,
  // Every process start sends BOOT, from whatever state was persisted.
  on: { BOOT: { target: '.startup', reenter: true, actions: 'recordBoot' } },
  states: {
    unbooted: {},

    startup: {
      initial: 'classifying',
      states: {
        classifying: {
          always: [whenVersion('DB_NOT_INITIALIZED'), whenVersion('DB_INITIALIZED_NO_VERSION'), whenVersion('VERSION_DOWNGRADE'), whenVersion('VERSION_UPGRADE'), { target: 'VERSION_MATCH' }],
        },
        DB_NOT_INITIALIZED: initializeDatabase('DB_NOT_INITIALIZED'),
        DB_INITIALIZED_NO_VERSION: initializeDatabase('DB_INITIALIZED_NO_VERSION'),
        // The database is newer than this keyward: change nothing, refuse to start.
        VERSION_DOWNGRADE: {
          entry: { type: 'recordVersionScenario', params: { scenario: 'VERSION_DOWNGRADE' } },
          always: {
            target: '#lifecycle.refused',
            actions: assign(({ context }) => ({
              reason: `the database was last used by keyward ${context.startup!.dbVersion}, which this keyward ${context.startup!.appVersion} cannot upgrade from (it is newer, or not a version): use that keyward or a newer one; nothing was changed`,
            })),
          },
        },
        VERSION_UPGRADE: {
          entry: { type: 'recordVersionScenario', params: { scenario: 'VERSION_UPGRADE' } },
          invoke: { src: 'migrateDatabase', input: ({ context }) => ({ appVersion: context.startup!.appVersion }), onDone: 'restoring', onError: toFailed },
        },
        VERSION_MATCH: {
          entry: { type: 'recordVersionScenario', params: { scenario: 'VERSION_MATCH' } },
          always: 'restoring',
        },

        restoring: {
          initial: 'classifying',
          states: {
            classifying: {
              always: [
                // A tampered transition log holds start-up until an operator has looked at it.
                { guard: 'logBrokenUnacknowledged', target: '#lifecycle.auditHold' },
                whenRestore('RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED'),
                whenRestore('RESTORE_SOFTWARE_WIZARD_COMPLETED'),
                whenRestore('RESTORE_SOFTWARE_WIZARD_INCOMPLETE'),
                whenRestore('RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED'),
                whenRestore('RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_NOT_CACHED'),
                whenRestore('RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_CACHED'),
                whenRestore('RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED'),
                whenRestore('RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_CACHED'),
                whenRestore('RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED'),
                whenRestore('RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_CACHED'),
                { target: 'RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED' },
              ],
            },
            // Software storage: nothing is encrypted, nothing to recover.
            RESTORE_SOFTWARE_WIZARD_COMPLETED: {
              entry: scenario('RESTORE_SOFTWARE_WIZARD_COMPLETED'),
              ...tlsFromDatabase('#lifecycle.operational'),
            },
            RESTORE_SOFTWARE_WIZARD_INCOMPLETE: {
              entry: scenario('RESTORE_SOFTWARE_WIZARD_INCOMPLETE'),
              ...tlsFromDatabase('#wizard'),
            },
            // The KEK is gone and the backup copy can bring the DEK back. The encrypted TLS key in the
            // database cannot be read yet: serve a temporary one until the password is given. A token
            // gone (confirmed by the probe) deactivates nothing yet: the operator confirms the loss by
            // setting a new token up.
            RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED: {
              entry: scenario('RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED'),
              initial: 'classifying',
              states: {
                classifying: { always: [{ guard: 'tokenGone', target: 'issuingTemporaryTlsForHsmSetup' }, { target: 'issuingTemporaryTls' }] },
                issuingTemporaryTlsForHsmSetup: newTls(false, '#autoRestore.hsmSetup'),
                issuingTemporaryTls: newTls(false, '#autoRestore.password'),
              },
            },
            // A working install restarted: the DEK is in memory (the probe unwrapped it), TLS from the DB.
            RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED: {
              entry: scenario('RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED'),
              ...tlsFromDatabase('#lifecycle.operational'),
            },
            RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_NOT_CACHED: {
              entry: scenario('RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_NOT_CACHED'),
              initial: 'classifying',
              states: {
                classifying: {
                  always: [
                    { guard: 'tokenMisconfigured', target: '#lifecycle.failed', actions: 'recordTokenReason' },
                    { guard: 'tokenUnreadable', target: '#lifecycle.failed', actions: 'recordTokenReason' },
                    { guard: 'noBackupCopy', target: '#lifecycle.unrecoverable' },
                    { target: 'issuingTemporaryTls' },
                  ],
                },
                issuingTemporaryTls: newTls(false, '#autoRestore.password'),
              },
            },
            RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_CACHED: {
              entry: scenario('RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_CACHED'),
              ...newTls(true, '#wizard'),
            },
            RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED: {
              entry: scenario('RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED'),
              ...newTls(false, '#wizard'),
            },
            // Physical HSMs: as SoftHSM, except that a token out of reach is an outage, not a loss.
            RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_CACHED: {
              entry: scenario('RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_CACHED'),
              ...tlsFromDatabase('#lifecycle.operational'),
            },
            RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED: {
              entry: scenario('RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED'),
              initial: 'classifying',
              states: {
                classifying: {
                  always: [
                    { guard: 'tokenUnreachable', target: '#lifecycle.outage', actions: 'recordTokenReason' },
                    { guard: 'tokenMisconfigured', target: '#lifecycle.failed', actions: 'recordTokenReason' },
                    { guard: 'noBackupCopy', target: '#lifecycle.unrecoverable' },
                    { target: 'issuingTemporaryTls' },
                  ],
                },
                issuingTemporaryTls: newTls(false, '#autoRestore.password'),
              },
            },
            RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_CACHED: {
              entry: scenario('RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_CACHED'),
              ...newTls(true, '#wizard'),
            },
            RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED: {
              entry: scenario('RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED'),
              ...newTls(false, '#wizard'),
            },
          },
        },
      },
    },

    // The first set-up, in Trustpoint's order.
    wizard: {
      id: 'wizard',
      tags: 'wizard',
      initial: 'cryptoStorage',
      states: {
        cryptoStorage: {
          meta: { wizardState: 'WIZARD_SETUP_CRYPTO_STORAGE' },
          initial: 'waiting',
          states: {
            waiting: { on: { SELECT_STORAGE: { target: 'recording', actions: ['clearError', 'recordStorageChoice'] } } },
            recording: stepEffect(
              'recordStorageType',
              ({ event }: { event: MachineEvent }) => {
                assertEvent(event, 'SELECT_STORAGE');
                return { storageType: event.storageType };
              },
              [{ guard: 'storageIsHsm', target: '#wizard.hsmSetup' }, { target: '#wizard.setupMode' }],
            ),
          },
        },
        hsmSetup: {
          meta: { wizardState: 'WIZARD_SETUP_HSM' },
          initial: 'waiting',
          states: {
            waiting: {
              on: {
                SETUP_HSM: { guard: 'hsmTypeMatchesStorage', target: 'settingUpToken', actions: ['clearError', 'recordHsmChoice'] },
                // No key is made before this step's effects: the storage may still be chosen again.
                BACK: { target: '#wizard.cryptoStorage', actions: 'clearError' },
              },
            },
            settingUpToken: stepEffect('setUpToken', ({ context }: { context: LifecycleContext }) => ({ ...context.hsm!, purpose: 'wizard' as const }), 'creatingKek'),
            creatingKek: stepEffect('createKek', {}, 'creatingDek'),
            creatingDek: stepEffect('createDek', {}, '#wizard.setupMode'),
          },
        },
        setupMode: {
          meta: { wizardState: 'WIZARD_SETUP_MODE' },
          initial: 'waiting',
          states: {
            waiting: {
              on: {
                CHOOSE_FRESH: { target: '#wizard.tlsCredential', actions: 'clearError' },
                RESTORE_BACKUP: { target: 'restoringBackup', actions: 'clearError' },
                // Under HSM storage the KEK and DEK exist by now: no way back past them.
                BACK: { guard: 'noKeyMade', target: '#wizard.cryptoStorage', actions: 'clearError' },
              },
            },
            // The archive's store replaces this one (which goes to quarantine); its BOOT decides next.
            restoringBackup: stepEffect(
              'restoreBackup',
              ({ event }: { event: MachineEvent }) => {
                assertEvent(event, 'RESTORE_BACKUP');
                return { path: event.path };
              },
              '#lifecycle.restored',
            ),
          },
        },
        tlsCredential: {
          meta: { wizardState: 'WIZARD_SELECT_TLS_SERVER_CREDENTIAL' },
          initial: 'waiting',
          states: {
            waiting: {
              on: {
                GENERATE_TLS: { target: 'generating', actions: 'clearError' },
                IMPORT_TLS_PKCS12: { target: 'importingPkcs12', actions: 'clearError' },
                IMPORT_TLS_FILES: { target: 'importingFiles', actions: 'clearError' },
              },
            },
            generating: stepEffect(
              'generateTlsCredential',
              ({ event }: { event: MachineEvent }) => {
                assertEvent(event, 'GENERATE_TLS');
                return { subjectAltNames: event.subjectAltNames };
              },
              { target: '#wizard.tlsApply', actions: 'recordPendingTls' },
            ),
            importingPkcs12: stepEffect(
              'importTlsPkcs12',
              ({ event }: { event: MachineEvent }) => {
                assertEvent(event, 'IMPORT_TLS_PKCS12');
                return { path: event.path };
              },
              { target: '#wizard.tlsApply', actions: 'recordPendingTls' },
            ),
            importingFiles: stepEffect(
              'importTlsFiles',
              ({ event }: { event: MachineEvent }) => {
                assertEvent(event, 'IMPORT_TLS_FILES');
                return { keyFile: event.keyFile, certificateFile: event.certificateFile, chainFile: event.chainFile };
              },
              { target: '#wizard.tlsApply', actions: 'recordPendingTls' },
            ),
          },
        },
        tlsApply: {
          meta: { wizardState: 'WIZARD_TLS_SERVER_CREDENTIAL_APPLY' },
          initial: 'waiting',
          states: {
            waiting: {
              on: {
                APPLY_TLS: { target: 'applying', actions: 'clearError' },
                // Trustpoint wrote a state that does not exist here; keyward goes back to the credential step.
                CANCEL_TLS: { target: '#wizard.tlsCredential', actions: ['clearError', 'clearPendingTls'] },
              },
            },
            applying: stepEffect('applyTlsCredential', ({ context }: { context: LifecycleContext }) => ({ credentialId: context.pendingTlsCredentialId! }), [
              { guard: 'storageIsHsm', target: '#wizard.backupPassword', actions: ['recordTls', 'clearPendingTls'] },
              { target: '#wizard.demoData', actions: ['recordTls', 'clearPendingTls'] },
            ]),
          },
        },
        backupPassword: {
          meta: { wizardState: 'WIZARD_BACKUP_PASSWORD' },
          initial: 'waiting',
          states: {
            waiting: { on: { SET_BACKUP_PASSWORD: { target: 'setting', actions: 'clearError' } } },
            setting: stepEffect('setBackupPassword', {}, '#wizard.recoveryShares'),
          },
        },
        // Optional: K-of-N recovery shares beside the backup password (docs/lifecycle.md "Recovery shares").
        recoveryShares: {
          meta: { wizardState: 'WIZARD_RECOVERY_SHARES' },
          initial: 'waiting',
          states: {
            waiting: {
              on: {
                CREATE_RECOVERY_SHARES: { target: 'creating', actions: 'clearError' },
                SKIP_RECOVERY_SHARES: { target: '#wizard.demoData', actions: 'clearError' },
                // The optional step is skipped by answering the next one: scripts written for the wizard without it still run.
                ADD_DEMO_DATA: { target: '#wizard.demoData.adding', actions: 'clearError' },
                SKIP_DEMO_DATA: { target: '#wizard.createAdmin', actions: 'clearError' },
              },
            },
            creating: stepEffect('createRecoveryShares', recoveryShareCounts, '#wizard.demoData'),
          },
        },
        demoData: {
          meta: { wizardState: 'WIZARD_DEMO_DATA' },
          initial: 'waiting',
          states: {
            waiting: {
              on: {
                ADD_DEMO_DATA: { target: 'adding', actions: 'clearError' },
                SKIP_DEMO_DATA: { target: '#wizard.createAdmin', actions: 'clearError' },
              },
            },
            adding: stepEffect('addDemoData', {}, '#wizard.createAdmin'),
          },
        },
        createAdmin: {
          meta: { wizardState: 'WIZARD_CREATE_SUPER_USER' },
          initial: 'waiting',
          states: {
            waiting: { on: { CREATE_ADMIN: { target: 'creating', actions: 'clearError' } } },
            creating: stepEffect(
              'createAdminUser',
              ({ event }: { event: MachineEvent }) => {
                assertEvent(event, 'CREATE_ADMIN');
                return { username: event.username };
              },
              { target: '#lifecycle.operational', actions: { type: 'recordCompletion', params: { kind: 'setup' } } },
            ),
          },
        },
      },
    },

    operational: {
      tags: 'operational',
      meta: { wizardState: 'WIZARD_COMPLETED' },
      // Operational again: a token loss still flagged was not one (the old token came back).
      entry: ['markWizardCompleted', 'clearLostTokenCas'],
      on: {
        ROTATE_KEK: { guard: 'mayRotateKek', target: 'rotatingKek', actions: ['clearError', { type: 'beginRotation', params: { kind: 'kek' } }] },
        ROTATE_DEK: { guard: 'mayRotateDek', target: 'rotatingDek', actions: ['clearError', { type: 'beginRotation', params: { kind: 'dek' } }] },
        CHANGE_BACKUP_PASSWORD: [
          { guard: 'lockedOut', actions: 'recordLockedOut' },
          { guard: 'storageIsHsm', target: 'changingBackupPassword', actions: 'clearError' },
        ],
        CHANGE_TOKEN_PIN: { guard: 'storageIsHsm', target: 'changingTokenPin', actions: 'clearError' },
        ADD_SECOND_KEK: { guard: 'storageIsHsm', target: 'addingSecondKek', actions: 'clearError' },
        REMOVE_SECOND_KEK: { guard: 'storageIsHsm', target: 'removingSecondKek', actions: 'clearError' },
        SETUP_HSM: { guard: 'primaryKekLost', target: 'replacingPrimaryKek', actions: ['clearError', 'recordHsmChoice'] },
        CREATE_RECOVERY_SHARES: { guard: 'storageIsHsm', target: 'creatingRecoveryShares', actions: 'clearError' },
      },
    },

    // A second KEK (docs/lifecycle.md "A second KEK"): every live DEK wrapped under a KEK in another
    // token too, so that BOOT unwraps with whichever KEK is present.
    addingSecondKek: {
      tags: 'operational',
      invoke: {
        src: 'addSecondKek',
        input: ({ event }) => {
          assertEvent(event, 'ADD_SECOND_KEK');
          return { modulePath: event.modulePath, label: event.label };
        },
        onDone: 'operational',
        onError: { target: 'operational', actions: 'recordError' },
      },
    },
    // Its wraps deleted (only while the primary KEK unwraps the keyset), then its KEK destroyed.
    removingSecondKek: {
      tags: 'operational',
      invoke: { src: 'removeSecondKek', input: {}, onDone: 'operational', onError: { target: 'operational', actions: 'recordError' } },
    },
    // Operational from the second KEK after the first token was lost: a new first token, its CAs
    // deactivated as in auto-restore, a new KEK on it, every live DEK wrapped under it from the keyset
    // the second KEK gave back; no password. Each step can be run again by sending SETUP_HSM again.
    replacingPrimaryKek: {
      tags: 'operational',
      initial: 'settingUpToken',
      states: {
        settingUpToken: {
          invoke: {
            src: 'setUpToken',
            input: ({ context }) => ({ ...context.hsm!, purpose: 'auto_restore' as const }),
            onDone: 'deactivatingLostCas',
            onError: { target: '#lifecycle.operational', actions: 'recordError' },
          },
        },
        deactivatingLostCas: {
          invoke: {
            src: 'deactivateTokenCas',
            input: { reason: 'their keys were in the first HSM token, which was lost' },
            onDone: 'creatingKek',
            onError: { target: '#lifecycle.operational', actions: 'recordError' },
          },
        },
        creatingKek: { invoke: { src: 'createKek', input: {}, onDone: 'wrapping', onError: { target: '#lifecycle.operational', actions: 'recordError' } } },
        wrapping: {
          invoke: {
            src: 'wrapKeysetUnderPrimary',
            input: {},
            onDone: { target: '#lifecycle.operational', actions: 'markPrimaryKekRestored' },
            onError: { target: '#lifecycle.operational', actions: 'recordError' },
          },
        },
      },
    },

    // A new share set replaces the old one (its copies deleted in the same commit); the shares go to the sender once.
    creatingRecoveryShares: {
      tags: 'operational',
      invoke: { src: 'createRecoveryShares', input: recoveryShareCounts, onDone: 'operational', onError: { target: 'operational', actions: 'recordError' } },
    },

    // KEK rotation (the server keeps serving): a new KEK in the token, every live DEK wrapped under
    // it in one commit, then the old KEK destroyed. Until the commit the old KEK unwraps; after it,
    // the new one. A failure before the commit rolls back (the new KEK is destroyed); a crash
    // anywhere is finished by the next BOOT (docs/lifecycle.md).
    rotatingKek: {
      tags: 'operational',
      initial: 'resuming',
      states: {
        resuming: { always: [resumeAt('wrapping'), resumeAt('destroyingOldKek'), { target: 'generating' }] },
        generating: rotationStep('generateNextKek', {}, 'wrapping', { target: 'rollingBack', actions: 'recordError' }),
        wrapping: rotationStep('wrapKeysetUnderKek', newKeyIdInput, 'destroyingOldKek', { target: 'rollingBack', actions: 'recordError' }),
        // Whatever KEK no live wrap names: the old one after the commit, the new one in a roll-back.
        destroyingOldKek: { invoke: { src: 'destroyUnreferencedKeks', input: {}, onDone: endRotation, onError: { target: 'failed', actions: 'recordError' } } },
        rollingBack: { invoke: { src: 'destroyUnreferencedKeks', input: {}, onDone: endRotation, onError: { target: 'failed', actions: 'recordError' } } },
        failed: { on: { ROTATE_KEK: { target: 'resuming', actions: 'clearError' } } },
      },
    },

    // DEK rotation, Tink's way: add a DEK, promote it (new values are written with it), re-encrypt
    // every value under an older key id in batches from a cursor kept in the database, retire the
    // old DEKs once no value carries their key id. Reads of every live key id work throughout.
    // A failure before the promotion ends the rotation (the added DEK waits, unused, for the next
    // one); after it, the rotation must finish: ROTATE_DEK or the next BOOT resumes it.
    rotatingDek: {
      tags: 'operational',
      initial: 'resuming',
      states: {
        resuming: { always: [resumeAt('promoting'), resumeAt('reencrypting'), resumeAt('retiring'), { target: 'adding' }] },
        adding: rotationStep('addDek', {}, 'promoting', { target: '#lifecycle.operational', actions: ['recordError', 'endRotation'] }),
        promoting: rotationStep('promoteDek', newKeyIdInput, 'reencrypting', { target: '#lifecycle.operational', actions: ['recordError', 'endRotation'] }),
        reencrypting: rotationStep('reencryptValues', newKeyIdInput, 'retiring', { target: 'failed', actions: 'recordError' }),
        retiring: { invoke: { src: 'retireOldDeks', input: newKeyIdInput, onDone: endRotation, onError: { target: 'failed', actions: 'recordError' } } },
        failed: { on: { ROTATE_DEK: { target: 'resuming', actions: 'clearError' } } },
      },
    },

    // A new backup key for the new password (new salt, today's KDF parameters), every live DEK sealed
    // to it, the old one deleted, in one commit: the old password opens nothing any more.
    changingBackupPassword: {
      tags: 'operational',
      invoke: {
        src: 'changeBackupPassword',
        input: ({ event }) => {
          assertEvent(event, 'CHANGE_BACKUP_PASSWORD');
          return { authorizeWith: event.authorizeWith, username: event.username };
        },
        onDone: { target: 'operational', actions: 'resetPasswordFailures' },
        onError: [
          { guard: 'wrongPassword', target: 'operational', actions: 'countPasswordFailure' },
          { target: 'operational', actions: 'recordError' },
        ],
      },
    },

    // C_SetPIN and the PIN file, staged so that a crash between the two never locks keyward out.
    changingTokenPin: {
      tags: 'operational',
      invoke: { src: 'changeTokenPin', input: {}, onDone: 'operational', onError: { target: 'operational', actions: 'recordError' } },
    },

    // After a lost KEK or token: set a token up again if it is gone, then the backup password.
    autoRestore: {
      id: 'autoRestore',
      tags: 'autoRestore',
      initial: 'password',
      states: {
        hsmSetup: {
          meta: { wizardState: 'WIZARD_SETUP_HSM_AUTORESTORE' },
          initial: 'waiting',
          states: {
            // A new token in place of the old one confirms the loss (flagged before the set-up runs, so
            // that a crash inside it cannot skip the deactivation).
            waiting: { on: { SETUP_HSM: { guard: 'hsmTypeMatchesStorage', target: 'settingUpToken', actions: ['clearError', 'recordHsmChoice', 'markLostTokenCas'] } } },
            settingUpToken: {
              invoke: {
                ...stepEffect('setUpToken', ({ context }: { context: LifecycleContext }) => ({ ...context.hsm!, purpose: 'auto_restore' as const }), 'deactivatingLostCas').invoke,
                // The loss is not confirmed by a set-up that failed.
                onError: { target: 'waiting', actions: ['recordError', 'clearLostTokenCas'] },
              },
            },
            deactivatingLostCas: deactivateLostCas('#autoRestore.password'),
          },
        },
        password: {
          meta: { wizardState: 'WIZARD_AUTO_RESTORE_PASSWORD' },
          initial: 'waiting',
          states: {
            waiting: {
              on: {
                SUBMIT_BACKUP_PASSWORD: [
                  { guard: 'lockedOut', actions: 'recordLockedOut' },
                  { target: 'recovering', actions: 'clearError' },
                ],
                // Or K recovery shares, one per event, held in the receiving process's memory until K are in.
                SUBMIT_RECOVERY_SHARE: [
                  { guard: 'lockedOut', actions: 'recordLockedOut' },
                  { target: 'collectingShare', actions: 'clearError' },
                ],
              },
            },
            collectingShare: {
              invoke: {
                src: 'collectRecoveryShare',
                input: {},
                onDone: [{ guard: 'sharesComplete', target: 'recoveringWithShares' }, { target: 'waiting' }],
                onError: [
                  { guard: 'wrongShare', target: 'waiting', actions: 'countPasswordFailure' },
                  { target: 'waiting', actions: 'recordError' },
                ],
              },
            },
            // As `recovering`, with the recovery copies that the combined shares open.
            recoveringWithShares: {
              invoke: {
                src: 'recoverDekWithShares',
                input: {},
                onDone: [{ guard: 'lostTokenCasPending', target: 'deactivatingLostCas' }, { target: 'checkingValues' }],
                onError: [
                  { guard: 'wrongShare', target: 'waiting', actions: 'countPasswordFailure' },
                  { target: 'waiting', actions: 'recordError' },
                ],
              },
            },
            // Recover the DEK with the password, make a KEK if there is none, re-wrap.
            recovering: {
              invoke: {
                src: 'recoverDek',
                input: {},
                onDone: [{ guard: 'lostTokenCasPending', target: 'deactivatingLostCas' }, { target: 'checkingValues' }],
                onError: [
                  { guard: 'wrongPassword', target: 'waiting', actions: 'countPasswordFailure' },
                  { target: 'waiting', actions: 'recordError' },
                ],
              },
            },
            // Only when a crash or a failure cut the deactivation after the token set-up short.
            deactivatingLostCas: deactivateLostCas('checkingValues'),
            // Every stored secret value opened with the recovered DEKs: the summary's count.
            checkingValues: stepEffect('checkSecretValues', {}, { target: 'loadingTls', actions: 'recordSecretValues' }),
            loadingTls: stepEffect(
              'loadTlsFromDatabase',
              {},
              {
                target: '#lifecycle.operational',
                actions: ['recordTls', 'resetPasswordFailures', { type: 'recordCompletion', params: { kind: 'recovery' } }],
              },
            ),
          },
        },
      },
    },

    // A physical HSM out of reach: wait, BOOT again after the `outageRetry` delay (the server arms
    // it from `bootAfter`, also after a restart); an operator may declare the token lost, and its CAs
    // are deactivated once a new token is set up (autoRestore.hsmSetup).
    outage: {
      tags: 'outage',
      meta: { bootAfter: 'outageRetry' },
      initial: 'waiting',
      states: {
        waiting: { on: { DECLARE_TOKEN_LOST: { guard: 'physicalHsm', target: 'issuingTemporaryTls' } } },
        issuingTemporaryTls: stepEffect('issueTlsCredential', { save: false }, { target: '#autoRestore.hsmSetup', actions: 'recordTls' }),
      },
    },

    // The DEK is not available and there is no backup copy: say so and change nothing.
    unrecoverable: {
      tags: 'failed',
      entry: {
        type: 'recordReason',
        params: { reason: 'the DEK cannot be unwrapped and no backup copy of it exists: encrypted data cannot be recovered; nothing was changed (restore the token or a backup)' },
      },
    },

    // The transition log's chain is broken: nothing goes on until an operator acknowledges that row.
    auditHold: {
      tags: 'auditHold',
      entry: assign(({ context }) => ({
        reason: `the transition log is broken at revision ${context.startup?.logBrokenAt}: ${context.startup?.logProblem ?? ''}; run \`keyward audit verify\`, then acknowledge with ACKNOWLEDGE_LOG_BREAK {"revision": ${context.startup?.logBrokenAt}}`,
      })),
      on: {
        ACKNOWLEDGE_LOG_BREAK: {
          guard: 'acknowledgesTheBreak',
          target: '#lifecycle.startup.restoring',
          actions: assign(({ event }) => ({ acknowledgedLogBreak: event.type === 'ACKNOWLEDGE_LOG_BREAK' ? event.revision : null, reason: null })),
        },
      },
    },

    refused: { meta: { persist: false } },

    // The archive's store replaced this one: the rest of the event belongs to no store; BOOT is next.
    restored: { tags: 'bootRequired', meta: { persist: false } },

    failed: { tags: 'failed' },
  },
});

export type LifecycleMachine = typeof lifecycleMachine;
