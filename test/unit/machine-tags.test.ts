import { StateValue, transition } from 'xstate';
import { INITIAL_CONTEXT, isTokenProblem, lifecycleMachine } from '../../machines/lifecycle-machine';
import { bootRetryDelayOf, stateString, tagsOfState } from '../../machines/state-names';
import { exitCodeFor, EXIT } from '../../server/exit-codes';
import { isReady, phaseOf } from '../../server/web/lifecycle-phase';

/** What the machine's states declare (tags, the delayed BOOT, the end of a restore), read without a name prefix anywhere. */
const AT = '2026-01-01T00:00:00.000Z';
const at = (value: StateValue) => lifecycleMachine.resolveState({ value, context: INITIAL_CONTEXT });

describe("phases and exit codes come from the machine's tags", () => {
  it.each([
    ['wizard.cryptoStorage.waiting', 'wizard', EXIT.OK],
    ['wizard.hsmSetup.creatingKek', 'wizard', EXIT.OK],
    ['autoRestore.password.waiting', 'autoRestore', EXIT.OK],
    ['autoRestore.hsmSetup.deactivatingLostCas', 'autoRestore', EXIT.OK],
    ['operational', 'operational', EXIT.OK],
    ['outage.waiting', 'unavailable', EXIT.OUTAGE],
    ['failed', 'unavailable', EXIT.STARTUP_FAILED],
    ['unrecoverable', 'unavailable', EXIT.STARTUP_FAILED],
    ['auditHold', 'unavailable', EXIT.AUDIT_BROKEN],
    ['unbooted', 'unavailable', EXIT.OK],
    ['startup.restoring.RESTORE_SOFTWARE_WIZARD_COMPLETED', 'unavailable', EXIT.OK],
    ['restored', 'unavailable', EXIT.OK],
    ['unknown', 'unavailable', EXIT.OK],
  ] as const)('%s: phase %s, exit %i', (state, phase, exit) => {
    expect(phaseOf(state)).toBe(phase);
    expect(exitCodeFor('applied', state)).toBe(exit);
    expect(isReady(state)).toBe(phase === 'wizard' || phase === 'operational');
  });

  it('reads the tags of the state node and its ancestors', () => {
    expect([...tagsOfState('outage.issuingTemporaryTls')]).toEqual(['outage']);
    expect(at({ outage: 'waiting' }).hasTag('outage')).toBe(true);
    expect([...tagsOfState('wizard.nothing')]).toEqual([]);
  });
});

describe('the physical-HSM outage retry is a delayed BOOT the machine declares', () => {
  it('outage asks for a BOOT after the outageRetry delay, in each of its states; no other state does', () => {
    expect(bootRetryDelayOf('outage.waiting')).toBe('outageRetry');
    expect(bootRetryDelayOf('outage.issuingTemporaryTls')).toBe('outageRetry');
    for (const state of ['operational', 'failed', 'wizard.cryptoStorage.waiting', 'autoRestore.password.waiting', 'unbooted', 'restored'])
      expect([state, bootRetryDelayOf(state)]).toEqual([state, null]);
  });
});

describe('a restore replaces the store: the machine says BOOT is next', () => {
  it('restoreBackup done leads to `restored`, which is not persisted and requires a BOOT', () => {
    const waiting = at({ wizard: { setupMode: 'waiting' } });
    const [restoring] = transition(lifecycleMachine, waiting, { type: 'RESTORE_BACKUP', path: '/tmp/a.kwb', at: AT });
    expect(stateString(restoring)).toBe('wizard.setupMode.restoringBackup');
    const [id] = Object.keys(restoring.children);
    const [restored] = transition(lifecycleMachine, restoring, { type: `xstate.done.actor.${id}`, output: { storeReplaced: true, quarantine: '/q' }, at: AT });
    expect(stateString(restored)).toBe('restored');
    expect(restored.hasTag('bootRequired')).toBe(true);
    expect(Object.values(restored.getMeta())).toContainEqual(expect.objectContaining({ persist: false }));
    const [failed] = transition(lifecycleMachine, restoring, { type: `xstate.error.actor.${id}`, error: { code: 'WRONG_PASSPHRASE', message: 'wrong passphrase' }, at: AT });
    expect(stateString(failed)).toBe('wizard.setupMode.waiting');
    expect(failed.context.lastError).toMatchObject({ code: 'WRONG_PASSPHRASE' });
  });
});

describe('every wizard and auto-restore step goes back to waiting with the error when its effect fails', () => {
  const steps: [StateValue, string, Record<string, unknown>][] = [
    [{ wizard: { cryptoStorage: 'waiting' } }, 'SELECT_STORAGE', { storageType: 'software' }],
    [{ wizard: { tlsCredential: 'waiting' } }, 'GENERATE_TLS', { subjectAltNames: ['localhost'] }],
    [{ wizard: { tlsCredential: 'waiting' } }, 'IMPORT_TLS_PKCS12', { path: '/tmp/c.p12' }],
    [{ wizard: { tlsCredential: 'waiting' } }, 'IMPORT_TLS_FILES', { keyFile: '/k', certificateFile: '/c', chainFile: null }],
    [{ wizard: { tlsApply: 'waiting' } }, 'APPLY_TLS', {}],
    [{ wizard: { backupPassword: 'waiting' } }, 'SET_BACKUP_PASSWORD', {}],
    [{ wizard: { demoData: 'waiting' } }, 'ADD_DEMO_DATA', {}],
    [{ wizard: { createAdmin: 'waiting' } }, 'CREATE_ADMIN', { username: 'admin' }],
    [{ autoRestore: { password: 'waiting' } }, 'SUBMIT_BACKUP_PASSWORD', {}],
  ];
  it.each(steps.map(([value, type, payload]) => [type, value, payload] as const))('%s', (type, value, payload) => {
    const start = lifecycleMachine.resolveState({ value, context: { ...INITIAL_CONTEXT, pendingTlsCredentialId: 1, storageType: 'software' } });
    const [running] = transition(lifecycleMachine, start, { type, ...payload, at: AT } as never);
    const [id] = Object.keys(running.children);
    expect(id).toBeDefined();
    const [back] = transition(lifecycleMachine, running, { type: `xstate.error.actor.${id}`, error: { code: 'SCRIPT_FAILED', message: 'it failed' }, at: AT });
    expect(stateString(back)).toBe(stateString(start));
    expect(back.context.lastError).toEqual({ code: 'SCRIPT_FAILED', message: 'it failed', at: AT });
  });
});

describe('a failed token set-up in auto-restore does not confirm the loss', () => {
  it("goes back to waiting with the error, and the lost token's CAs are no longer flagged", () => {
    const start = lifecycleMachine.resolveState({ value: { autoRestore: { hsmSetup: 'waiting' } }, context: { ...INITIAL_CONTEXT, storageType: 'softhsm' } });
    const [running] = transition(lifecycleMachine, start, { type: 'SETUP_HSM', hsmType: 'softhsm', modulePath: '/usr/lib/softhsm/libsofthsm2.so', label: 'T', slot: null, at: AT });
    expect(running.context.lostTokenCasPending).toBe(true);
    const [id] = Object.keys(running.children);
    const [back] = transition(lifecycleMachine, running, { type: `xstate.error.actor.${id}`, error: { code: 'SCRIPT_FAILED', message: 'it failed' }, at: AT });
    expect(stateString(back)).toBe('autoRestore.hsmSetup.waiting');
    expect(back.context).toMatchObject({ lostTokenCasPending: false, lastError: { code: 'SCRIPT_FAILED' } });
  });
});

describe('the probe\'s rule: which token errors mean "no DEK"', () => {
  it('a corrupt or foreign wrapped DEK, or a KEK gone or replaced, is the DEK not available; anything else is a token problem', () => {
    for (const code of ['WRAPPED_BLOB_CORRUPT', 'KEK_REPLACED', 'KEK_MISSING', 'DEK_KEY_ID_MISMATCH']) expect([code, isTokenProblem(code)]).toEqual([code, false]);
    for (const code of ['WRONG_PIN', 'PIN_LOCKED', 'MODULE_LOAD_FAILED', 'TOKEN_UNREACHABLE', 'PKCS11_ERROR']) expect([code, isTokenProblem(code)]).toEqual([code, true]);
  });
});
