import { describeRefusal, stateString } from '../../machines/state-names';
import { answer, AT, running, runToRest, send } from './support/machine-steps';
import { healthyStartup, operational } from './support/operational-fixture';

/**
 * The key-rotation rows of docs/lifecycle.md through the machine alone: each step's effect answered
 * (done or failed) and where the machine goes; a BOOT in the middle and the event that resumes it.
 */
const NEW_KEY = '0123456789abcdef';
const TLS = { fingerprintSha256: 'AA', notAfter: AT, origin: 'database' };
const startup = healthyStartup();

const failure = { code: 'TOKEN_UNREACHABLE', message: 'the token cannot be reached now' };

describe('KEK rotation through the machine', () => {
  it('generates, wraps under the new KEK, destroys the old, and records the new CKA_ID on the way', () => {
    let snapshot = send(operational(), { type: 'ROTATE_KEK' });
    expect(snapshot.hasTag('operational')).toBe(true);
    expect(running(snapshot)).toBe('generateNextKek');
    snapshot = answer(snapshot, { output: { keyId: NEW_KEY, reused: false } });
    expect(stateString(snapshot)).toBe('rotatingKek.wrapping');
    expect(snapshot.context.keyRotation).toMatchObject({ kind: 'kek', step: 'wrapping', newKeyId: NEW_KEY });
    const rest = runToRest(snapshot);
    expect(rest.effects).toEqual(['wrapKeysetUnderKek', 'destroyUnreferencedKeks']);
    expect(stateString(rest.snapshot)).toBe('operational');
    expect(rest.snapshot.context.keyRotation).toBeNull();
  });

  it('rolls back on a failure before the commit: the KEK no wrap names is destroyed, the error kept', () => {
    let snapshot = answer(send(operational(), { type: 'ROTATE_KEK' }), { output: { keyId: NEW_KEY } });
    snapshot = answer(snapshot, { error: failure });
    expect(stateString(snapshot)).toBe('rotatingKek.rollingBack');
    expect(running(snapshot)).toBe('destroyUnreferencedKeks');
    snapshot = answer(snapshot, { output: { destroyed: [NEW_KEY] } });
    expect(stateString(snapshot)).toBe('operational');
    expect(snapshot.context.lastError).toMatchObject(failure);
    expect(snapshot.context.keyRotation).toBeNull();
  });

  it('after a crash, BOOT keeps the rotation in the context and ROTATE_KEK resumes at the step it reached', () => {
    const interrupted = answer(send(operational(), { type: 'ROTATE_KEK' }), { output: { keyId: NEW_KEY } });
    const booted = runToRest(send(interrupted, { type: 'BOOT', startup }), { loadTlsFromDatabase: TLS });
    expect(stateString(booted.snapshot)).toBe('operational');
    expect(booted.effects).toEqual(['loadTlsFromDatabase']); // never auto-restore
    expect(booted.snapshot.context.keyRotation).toMatchObject({ kind: 'kek', step: 'wrapping', newKeyId: NEW_KEY });
    const resumed = send(booted.snapshot, { type: 'ROTATE_KEK' });
    expect(running(resumed)).toBe('wrapKeysetUnderKek');
    expect(resumed.children[Object.keys(resumed.children)[0]!]).toBeDefined();
    expect(runToRest(resumed).effects).toEqual(['wrapKeysetUnderKek', 'destroyUnreferencedKeks']);
  });

  it('is refused under software storage and while a DEK rotation is unfinished, with the reason', () => {
    const software = operational({ storageType: 'software' });
    expect(software.can({ type: 'ROTATE_KEK', at: AT } as never)).toBe(false);
    expect(describeRefusal(software, { type: 'ROTATE_KEK' })).toMatch(/HSM storage only/);
    const dekUnfinished = operational({ keyRotation: { kind: 'dek', step: 'reencrypting', newKeyId: NEW_KEY, startedAt: AT } });
    expect(dekUnfinished.can({ type: 'ROTATE_KEK', at: AT } as never)).toBe(false);
    expect(dekUnfinished.can({ type: 'ROTATE_DEK', at: AT } as never)).toBe(true);
  });
});

describe('DEK rotation through the machine', () => {
  it('adds, promotes, re-encrypts, retires', () => {
    const start = send(operational(), { type: 'ROTATE_DEK' });
    const rest = runToRest(start, { addDek: { keyId: NEW_KEY, reused: false }, promoteDek: { keyId: NEW_KEY } });
    expect(rest.effects).toEqual(['addDek', 'promoteDek', 'reencryptValues', 'retireOldDeks']);
    expect(stateString(rest.snapshot)).toBe('operational');
    expect(rest.snapshot.context.keyRotation).toBeNull();
  });

  it('ends the rotation on a failure before the promotion; after it, waits in failed until ROTATE_DEK resumes', () => {
    const early = answer(send(operational(), { type: 'ROTATE_DEK' }), { error: failure });
    expect(stateString(early)).toBe('operational');
    expect(early.context.keyRotation).toBeNull();
    expect(early.context.lastError).toMatchObject(failure);

    let late = answer(send(operational(), { type: 'ROTATE_DEK' }), { output: { keyId: NEW_KEY } });
    late = answer(late, { output: { keyId: NEW_KEY } });
    expect(stateString(late)).toBe('rotatingDek.reencrypting');
    late = answer(late, { error: failure });
    expect(stateString(late)).toBe('rotatingDek.failed');
    expect(late.hasTag('operational')).toBe(true); // the server keeps serving
    expect(late.can({ type: 'ROTATE_KEK', at: AT } as never)).toBe(false);
    const resumed = send(late, { type: 'ROTATE_DEK' });
    expect(running(resumed)).toBe('reencryptValues');
    expect(resumed.context.lastError).toBeNull();
  });

  it('resumes after BOOT at the job, not at a new DEK', () => {
    let snapshot = answer(send(operational(), { type: 'ROTATE_DEK' }), { output: { keyId: NEW_KEY } });
    snapshot = answer(snapshot, { output: { keyId: NEW_KEY } });
    const booted = runToRest(send(snapshot, { type: 'BOOT', startup }), { loadTlsFromDatabase: TLS });
    expect(booted.snapshot.context.keyRotation).toMatchObject({ kind: 'dek', step: 'reencrypting', newKeyId: NEW_KEY });
    expect(runToRest(send(booted.snapshot, { type: 'ROTATE_DEK' })).effects).toEqual(['reencryptValues', 'retireOldDeks']);
  });
});

describe('backup password change through the machine', () => {
  it('counts a wrong current password toward the persisted lockout, which returning to operational does not reset', () => {
    let snapshot = operational();
    for (let attempt = 1; attempt <= 3; attempt++) {
      snapshot = send(snapshot, { type: 'CHANGE_BACKUP_PASSWORD', authorizeWith: 'backup_password', username: null });
      expect(running(snapshot)).toBe('changeBackupPassword');
      snapshot = answer(snapshot, { error: { code: 'WRONG_BACKUP_PASSWORD', message: 'the backup password is wrong' } });
      expect(stateString(snapshot)).toBe('operational');
      expect(snapshot.context.passwordFailures).toBe(attempt);
    }
    expect(snapshot.context.lockedUntil).not.toBeNull();
    const locked = send(snapshot, { type: 'CHANGE_BACKUP_PASSWORD', authorizeWith: 'backup_password', username: null });
    expect(running(locked)).toBeNull();
    expect(locked.context.lastError?.code).toBe('LOCKED_OUT');
    // After the lockout, a right password resets the count.
    const later = send(snapshot, { type: 'CHANGE_BACKUP_PASSWORD', authorizeWith: 'backup_password', username: null, at: '2027-01-01T00:00:00.000Z' });
    expect(stateString(answer(later, { output: { kdf: 'argon2id', dekKeyIds: [NEW_KEY] } }))).toBe('operational');
    expect(answer(later, { output: {} }).context.passwordFailures).toBe(0);
  });

  it('changes the token PIN only under HSM storage', () => {
    expect(operational({ storageType: 'software' }).can({ type: 'CHANGE_TOKEN_PIN', at: AT } as never)).toBe(false);
    const changing = send(operational(), { type: 'CHANGE_TOKEN_PIN' });
    expect(running(changing)).toBe('changeTokenPin');
    expect(stateString(answer(changing, { error: failure }))).toBe('operational');
  });
});
