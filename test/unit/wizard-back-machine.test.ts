import { INITIAL_CONTEXT, LifecycleContext, lifecycleMachine } from '../../machines/lifecycle-machine';
import { describeRefusal, stateString } from '../../machines/state-names';
import { answer, AT, running, runToRest, send, Snapshot } from './support/machine-steps';

/**
 * BACK in the wizard (the operator's previous step, until the first key is made) and the summaries'
 * figures the machine records at the end of a set-up and of an auto-restore.
 */
const at = (value: unknown, context: Partial<LifecycleContext> = {}): Snapshot => lifecycleMachine.resolveState({ value: value as never, context: { ...INITIAL_CONTEXT, ...context } });
const accepts = (snapshot: Snapshot, type: string) => snapshot.can({ type, at: AT } as never);
const TLS = { fingerprintSha256: 'AA', notAfter: AT, origin: 'database' };

describe('BACK in the wizard', () => {
  it('goes from the HSM token step back to the crypto storage, clearing the step’s error; the storage can be chosen again', () => {
    const failed = at({ wizard: { hsmSetup: 'waiting' } }, { storageType: 'softhsm', lastError: { code: 'MODULE_MISSING', message: 'no such module', at: AT } });
    const back = send(failed, { type: 'BACK' });
    expect(stateString(back)).toBe('wizard.cryptoStorage.waiting');
    expect(back.context.lastError).toBeNull();
    const again = send(back, { type: 'SELECT_STORAGE', storageType: 'software' });
    expect(running(again)).toBe('recordStorageType');
    expect(stateString(runToRest(again, { recordStorageType: { storageType: 'software' } }).snapshot)).toBe('wizard.setupMode.waiting');
  });

  it('goes back from the set-up mode under software storage (no key made), not under HSM storage (KEK and DEK exist)', () => {
    expect(stateString(send(at({ wizard: { setupMode: 'waiting' } }, { storageType: 'software' }), { type: 'BACK' }))).toBe('wizard.cryptoStorage.waiting');
    const hsm = at({ wizard: { setupMode: 'waiting' } }, { storageType: 'softhsm' });
    expect(accepts(hsm, 'BACK')).toBe(false);
    expect(describeRefusal(hsm, { type: 'BACK' })).toMatch(/keys are made already/);
  });

  it('is not accepted once the token set-up runs, past the first key, or in auto-restore', () => {
    const settingUp = send(at({ wizard: { hsmSetup: 'waiting' } }, { storageType: 'softhsm' }), {
      type: 'SETUP_HSM',
      hsmType: 'softhsm',
      modulePath: '/usr/lib/softhsm/libsofthsm2.so',
      label: 'T',
      slot: null,
    });
    expect(running(settingUp)).toBe('setUpToken');
    expect(accepts(settingUp, 'BACK')).toBe(false);
    for (const value of [
      { wizard: { tlsCredential: 'waiting' } },
      { wizard: { backupPassword: 'waiting' } },
      { wizard: { createAdmin: 'waiting' } },
      { autoRestore: { hsmSetup: 'waiting' } },
      'operational',
    ]) {
      expect([value, accepts(at(value, { storageType: 'software' }), 'BACK')]).toEqual([value, false]);
    }
  });
});

describe('the summaries’ figures', () => {
  it('a set-up records its completion when the administrator is created', () => {
    const creating = send(at({ wizard: { createAdmin: 'waiting' } }, { storageType: 'softhsm' }), { type: 'CREATE_ADMIN', username: 'admin' });
    const done = runToRest(creating, { createAdminUser: { username: 'admin' } }).snapshot;
    expect(stateString(done)).toBe('operational');
    expect(done.context.lastCompletion).toEqual({ kind: 'setup', at: AT });
  });

  it('an auto-restore after a lost token records the deactivated CAs and the checked values, over a BOOT in between', () => {
    let snapshot = send(at({ autoRestore: { hsmSetup: 'waiting' } }, { storageType: 'softhsm', wizardCompleted: true }), {
      type: 'SETUP_HSM',
      hsmType: 'softhsm',
      modulePath: '/usr/lib/softhsm/libsofthsm2.so',
      label: 'T',
      slot: null,
    });
    snapshot = runToRest(snapshot, { setUpToken: { initialized: true }, deactivateTokenCas: { deactivated: 2, names: ['ca-1', 'ca-2'] } }).snapshot;
    expect(stateString(snapshot)).toBe('autoRestore.password.waiting');
    expect(snapshot.context.recovery).toEqual({ deactivatedCas: ['ca-1', 'ca-2'], secretValues: null });
    // A wrong password first: nothing checked, nothing completed.
    snapshot = answer(send(snapshot, { type: 'SUBMIT_BACKUP_PASSWORD' }), { error: { code: 'WRONG_BACKUP_PASSWORD', message: 'wrong' } });
    expect(snapshot.context.lastCompletion).toBeNull();
    const check = { checked: 7, readable: 7, unreadable: [] };
    const rest = runToRest(send(snapshot, { type: 'SUBMIT_BACKUP_PASSWORD' }), { recoverDek: { dekKeyId: 'ab', kekId: 'cd' }, checkSecretValues: check, loadTlsFromDatabase: TLS });
    expect(rest.effects).toEqual(['recoverDek', 'checkSecretValues', 'loadTlsFromDatabase']);
    expect(stateString(rest.snapshot)).toBe('operational');
    expect(rest.snapshot.context.lastCompletion).toEqual({ kind: 'recovery', at: AT, deactivatedCas: ['ca-1', 'ca-2'], secretValues: check });
    expect(rest.snapshot.context.recovery).toBeNull();
  });

  it('a persisted snapshot from before summaries (no such fields) still completes a recovery', () => {
    const { recovery: _r, lastCompletion: _l, ...older } = INITIAL_CONTEXT;
    const snapshot = lifecycleMachine.resolveState({ value: { autoRestore: { password: 'waiting' } }, context: { ...older, storageType: 'softhsm', wizardCompleted: true } });
    const rest = runToRest(send(snapshot, { type: 'SUBMIT_BACKUP_PASSWORD' }), { checkSecretValues: { checked: 3, readable: 3, unreadable: [] }, loadTlsFromDatabase: TLS });
    expect(rest.snapshot.context.lastCompletion).toMatchObject({ kind: 'recovery', deactivatedCas: [], secretValues: { checked: 3 } });
  });
});
