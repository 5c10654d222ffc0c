import { stateString, wizardStateOf } from '../../machines/state-names';
import { answer, AT, running, send } from './support/machine-steps';
import { softHsmAt } from './support/operational-fixture';

/**
 * The recovery-share rows of docs/lifecycle.md through the machine alone: the optional wizard step,
 * the admin action, and auto-restore taking K shares one event at a time, wrong ones counted.
 */
const SET = '0123456789abcdef';

const collected = (n: number) => ({ output: { shareSetId: SET, index: n, collected: n, threshold: 3 } });

describe('recovery shares in the machine', () => {
  it('offers an optional wizard step after the backup password, skipped by its own event or by answering the next step', () => {
    const setting = send(softHsmAt({ wizard: { backupPassword: 'waiting' } }), { type: 'SET_BACKUP_PASSWORD' });
    const step = answer(setting, { output: { kdf: 'argon2id' } });
    expect([stateString(step), wizardStateOf(step)]).toEqual(['wizard.recoveryShares.waiting', 'WIZARD_RECOVERY_SHARES']);
    const creating = send(step, { type: 'CREATE_RECOVERY_SHARES', shares: 5, threshold: 3 });
    expect(running(creating)).toBe('createRecoveryShares');
    expect(stateString(answer(creating, { output: { shareSetId: SET, shares: 5, threshold: 3, dekKeyIds: [] } }))).toBe('wizard.demoData.waiting');
    // A failure stays on the step with the message.
    const failed = answer(creating, { error: { code: 'RECOVERY_SHARES_NOT_SHOWN', message: 'none were made' } });
    expect([stateString(failed), failed.context.lastError?.code]).toEqual(['wizard.recoveryShares.waiting', 'RECOVERY_SHARES_NOT_SHOWN']);
    expect(stateString(send(step, { type: 'SKIP_RECOVERY_SHARES' }))).toBe('wizard.demoData.waiting');
    expect(stateString(send(step, { type: 'SKIP_DEMO_DATA' }))).toBe('wizard.createAdmin.waiting');
    expect(running(send(step, { type: 'ADD_DEMO_DATA' }))).toBe('addDemoData');
  });

  it('lets an administrator make a new set while operational, under HSM storage only', () => {
    const operational = softHsmAt('operational', { wizardCompleted: true });
    const creating = send(operational, { type: 'CREATE_RECOVERY_SHARES', shares: 3, threshold: 2 });
    expect([stateString(creating), running(creating)]).toEqual(['creatingRecoveryShares', 'createRecoveryShares']);
    expect(stateString(answer(creating, { error: { code: 'DEK_UNAVAILABLE', message: 'not loaded' } }))).toBe('operational');
    expect(softHsmAt('operational', { wizardCompleted: true, storageType: 'software' }).can({ type: 'CREATE_RECOVERY_SHARES', shares: 3, threshold: 2, at: AT })).toBe(false);
  });

  it('recovers in auto-restore once K shares are in; wrong ones count toward the lockout, a typo does not', () => {
    let snapshot = softHsmAt({ autoRestore: { password: 'waiting' } }, { wizardCompleted: true });
    const submit = () => send(snapshot, { type: 'SUBMIT_RECOVERY_SHARE' });

    snapshot = answer(submit(), { error: { code: 'RECOVERY_SHARE_INVALID', message: 'typo' } });
    expect([stateString(snapshot), snapshot.context.passwordFailures]).toEqual(['autoRestore.password.waiting', 0]);
    snapshot = answer(submit(), { error: { code: 'RECOVERY_SHARE_WRONG', message: 'another set' } });
    expect(snapshot.context.passwordFailures).toBe(1);

    snapshot = answer(submit(), collected(1));
    snapshot = answer(submit(), collected(2));
    expect(stateString(snapshot)).toBe('autoRestore.password.waiting');
    snapshot = answer(submit(), collected(3));
    expect(running(snapshot)).toBe('recoverDekWithShares');
    snapshot = answer(snapshot, { output: { dekKeyId: 'aa', kekId: 'bb', shareSetId: SET, sharesUsed: 3 } });
    // As after the password: every value checked (the summary's count), then the TLS credential.
    expect(running(snapshot)).toBe('checkSecretValues');
    snapshot = answer(snapshot, { output: { checked: 12, readable: 12, unreadable: [] } });
    expect(running(snapshot)).toBe('loadTlsFromDatabase');
    snapshot = answer(snapshot, { output: { fingerprintSha256: 'AA', notAfter: AT, origin: 'database' } });
    expect([stateString(snapshot), snapshot.context.passwordFailures]).toEqual(['operational', 0]);
    expect(snapshot.context.lastCompletion).toEqual(expect.objectContaining({ kind: 'recovery', secretValues: { checked: 12, readable: 12, unreadable: [] } }));
  });

  it('holds shares like passwords while locked out', () => {
    const locked = softHsmAt({ autoRestore: { password: 'waiting' } }, { wizardCompleted: true, passwordFailures: 3, lockedUntil: '2026-01-01T00:01:00.000Z' });
    const refused = send(locked, { type: 'SUBMIT_RECOVERY_SHARE' });
    expect([stateString(refused), running(refused), refused.context.lastError?.code]).toEqual(['autoRestore.password.waiting', null, 'LOCKED_OUT']);
  });
});
