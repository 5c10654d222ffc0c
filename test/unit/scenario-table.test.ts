import { transition } from 'xstate';
import { INITIAL_CONTEXT, lifecycleMachine } from '../../machines/lifecycle-machine';
import type { StartupContext } from '../../machines/startup-context';
import { RESTORE_SCENARIOS, StartupScenario, VERSION_SCENARIOS } from '../../machines/startup-scenario';
import { stateString } from '../../machines/state-names';

/**
 * The scenario table of docs/lifecycle.md through the machine alone: a StartupContext, a BOOT, each
 * effect the machine invokes answered as done, and the state it comes to rest in. No token, no
 * database: the same table test/lifecycle/startup-scenarios.test.ts builds for real.
 */
type Snapshot = ReturnType<typeof lifecycleMachine.resolveState>;

const AT = '2026-01-01T00:00:00.000Z';
const TLS = { fingerprintSha256: 'AA', notAfter: AT, origin: 'new' };

const base: StartupContext = {
  dbInitialized: true,
  dbVersion: '1.0.0',
  appVersion: '1.0.0',
  schemaPending: false,
  wizardCompleted: true,
  storageType: 'software',
  tokenPresent: null,
  kekPresent: null,
  dekAvailable: null,
  backupCopyPresent: false,
  tokenProblem: null,
  logBrokenAt: null,
  logProblem: null,
  probedAt: AT,
};
const softhsm: Partial<StartupContext> = { storageType: 'softhsm', tokenPresent: true, kekPresent: true, dekAvailable: true, backupCopyPresent: true };
const physical: Partial<StartupContext> = { ...softhsm, storageType: 'physical_hsm' };
const dekLost: Partial<StartupContext> = { kekPresent: true, dekAvailable: false };

/** Sends BOOT from `from` and answers every invoke as done; returns where it rests and which effects ran. */
function boot(startup: StartupContext, from: Snapshot = lifecycleMachine.resolveState({ value: 'unbooted', context: INITIAL_CONTEXT })) {
  let [snapshot] = transition(lifecycleMachine, from, { type: 'BOOT', startup, at: AT });
  const effects: string[] = [];
  for (let guard = 0; Object.keys(snapshot.children).length > 0; guard++) {
    if (guard > 20) throw new Error('the machine does not come to rest');
    const [id] = Object.keys(snapshot.children);
    effects.push((snapshot.children[id!] as { src?: unknown }).src as string);
    [snapshot] = transition(lifecycleMachine, snapshot, { type: `xstate.done.actor.${id}`, output: TLS, at: AT });
  }
  return { snapshot, state: stateString(snapshot), effects, scenarios: [snapshot.context.versionScenario, snapshot.context.restoreScenario] };
}

interface Row {
  scenario: StartupScenario;
  when: string;
  startup: Partial<StartupContext>;
  effects: string[];
  next: string;
}

// One scenario row per line, as in docs/lifecycle.md.
// prettier-ignore
const ROWS: Row[] = [
  { scenario: 'DB_NOT_INITIALIZED', when: 'no schema', startup: { dbInitialized: false, dbVersion: null, wizardCompleted: false, storageType: null }, effects: ['migrateDatabase', 'issueTlsCredential'], next: 'wizard.cryptoStorage.waiting' },
  { scenario: 'DB_INITIALIZED_NO_VERSION', when: 'no version row', startup: { dbVersion: null, wizardCompleted: false, storageType: null }, effects: ['migrateDatabase', 'issueTlsCredential'], next: 'wizard.cryptoStorage.waiting' },
  { scenario: 'VERSION_DOWNGRADE', when: 'a newer database', startup: { dbVersion: '2.0.0' }, effects: [], next: 'refused' },
  { scenario: 'VERSION_DOWNGRADE', when: 'a version that is none', startup: { dbVersion: 'garbage' }, effects: [], next: 'refused' },
  { scenario: 'VERSION_UPGRADE', when: 'an older database', startup: { dbVersion: '0.9.0' }, effects: ['migrateDatabase', 'loadTlsFromDatabase'], next: 'operational' },
  { scenario: 'VERSION_UPGRADE', when: 'a migration pending', startup: { schemaPending: true }, effects: ['migrateDatabase', 'loadTlsFromDatabase'], next: 'operational' },
  { scenario: 'VERSION_MATCH', when: 'the same version', startup: {}, effects: ['loadTlsFromDatabase'], next: 'operational' },
  { scenario: 'RESTORE_SOFTWARE_WIZARD_COMPLETED', when: 'software, completed', startup: {}, effects: ['loadTlsFromDatabase'], next: 'operational' },
  { scenario: 'RESTORE_SOFTWARE_WIZARD_INCOMPLETE', when: 'software, not completed', startup: { wizardCompleted: false }, effects: ['loadTlsFromDatabase'], next: 'wizard.cryptoStorage.waiting' },
  { scenario: 'RESTORE_SOFTWARE_WIZARD_INCOMPLETE', when: 'no storage chosen', startup: { wizardCompleted: false, storageType: null }, effects: ['loadTlsFromDatabase'], next: 'wizard.cryptoStorage.waiting' },
  { scenario: 'RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED', when: 'KEK gone, token there', startup: { ...softhsm, kekPresent: false, dekAvailable: false }, effects: ['issueTlsCredential'], next: 'autoRestore.password.waiting' },
  { scenario: 'RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED', when: 'token gone', startup: { ...softhsm, tokenPresent: false, kekPresent: false, dekAvailable: false }, effects: ['issueTlsCredential'], next: 'autoRestore.hsmSetup.waiting' },
  { scenario: 'RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED', when: 'KEK gone, whatever the wizard flag', startup: { ...softhsm, wizardCompleted: false, kekPresent: false, dekAvailable: false }, effects: ['issueTlsCredential'], next: 'autoRestore.password.waiting' },
  { scenario: 'RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED', when: 'DEK unwrapped', startup: softhsm, effects: ['loadTlsFromDatabase'], next: 'operational' },
  { scenario: 'RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_NOT_CACHED', when: 'DEK does not unwrap, backup copy', startup: { ...softhsm, ...dekLost }, effects: ['issueTlsCredential'], next: 'autoRestore.password.waiting' },
  { scenario: 'RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_NOT_CACHED', when: 'no backup copy', startup: { ...softhsm, ...dekLost, backupCopyPresent: false }, effects: [], next: 'unrecoverable' },
  { scenario: 'RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_NOT_CACHED', when: 'a wrong PIN', startup: { ...softhsm, ...dekLost, tokenProblem: 'WRONG_PIN' }, effects: [], next: 'failed' },
  { scenario: 'RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_NOT_CACHED', when: 'a token that could not be read', startup: { ...softhsm, tokenPresent: null, kekPresent: null, dekAvailable: false, tokenProblem: 'TOKEN_UNREACHABLE' }, effects: [], next: 'failed' },
  { scenario: 'RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_CACHED', when: 'not completed, DEK unwrapped', startup: { ...softhsm, wizardCompleted: false }, effects: ['issueTlsCredential'], next: 'wizard.cryptoStorage.waiting' },
  { scenario: 'RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED', when: 'not completed, no DEK', startup: { ...softhsm, ...dekLost, wizardCompleted: false }, effects: ['issueTlsCredential'], next: 'wizard.cryptoStorage.waiting' },
  { scenario: 'RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_CACHED', when: 'DEK unwrapped', startup: physical, effects: ['loadTlsFromDatabase'], next: 'operational' },
  { scenario: 'RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED', when: 'DEK does not unwrap, backup copy', startup: { ...physical, ...dekLost }, effects: ['issueTlsCredential'], next: 'autoRestore.password.waiting' },
  { scenario: 'RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED', when: 'token out of reach', startup: { ...physical, tokenPresent: null, kekPresent: null, dekAvailable: false, tokenProblem: 'TOKEN_UNREACHABLE' }, effects: [], next: 'outage.waiting' },
  { scenario: 'RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED', when: 'token gone', startup: { ...physical, tokenPresent: false, kekPresent: false, dekAvailable: false }, effects: [], next: 'outage.waiting' },
  { scenario: 'RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED', when: 'a wrong PIN', startup: { ...physical, ...dekLost, tokenProblem: 'WRONG_PIN' }, effects: [], next: 'failed' },
  { scenario: 'RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED', when: 'no backup copy', startup: { ...physical, ...dekLost, backupCopyPresent: false }, effects: [], next: 'unrecoverable' },
  { scenario: 'RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_CACHED', when: 'not completed, DEK unwrapped', startup: { ...physical, wizardCompleted: false }, effects: ['issueTlsCredential'], next: 'wizard.cryptoStorage.waiting' },
  { scenario: 'RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED', when: 'not completed, no DEK', startup: { ...physical, ...dekLost, wizardCompleted: false }, effects: ['issueTlsCredential'], next: 'wizard.cryptoStorage.waiting' },
];

describe('the start-up scenario table, through the machine alone', () => {
  it.each(ROWS.map((row) => [row.scenario, row.when, row] as const))('%s (%s)', (scenario, _when, row) => {
    const result = boot({ ...base, ...row.startup });
    expect(result.scenarios).toContain(scenario);
    expect(result.effects).toEqual(row.effects);
    expect(result.state).toBe(row.next);
  });

  it('has a row for every StartupScenario', () => {
    // Derived from the scenario lists themselves: a scenario added there without a row here fails.
    const covered = new Set(ROWS.map((row) => row.scenario));
    expect([...VERSION_SCENARIOS, ...RESTORE_SCENARIOS].filter((name) => !covered.has(name))).toEqual([]);
  });

  it('reaches every StartupScenario state of the machine from a StartupContext', () => {
    const reached = new Set(ROWS.flatMap((row) => boot({ ...base, ...row.startup }).scenarios));
    expect([...VERSION_SCENARIOS, ...RESTORE_SCENARIOS].filter((name) => !reached.has(name))).toEqual([]);
  });

  it('holds start-up in auditHold while a broken log is not acknowledged, whatever the scenario', () => {
    expect(boot({ ...base, ...softhsm, logBrokenAt: 7, logProblem: 'row 7 altered' }).state).toBe('auditHold');
    const acknowledged = lifecycleMachine.resolveState({ value: 'operational', context: { ...INITIAL_CONTEXT, acknowledgedLogBreak: 7 } });
    expect(boot({ ...base, ...softhsm, logBrokenAt: 7, logProblem: 'row 7 altered' }, acknowledged).state).toBe('operational');
  });
});
