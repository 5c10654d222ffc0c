import type { StartupContext } from '../../machines/startup-context';
import { describeRefusal, stateString } from '../../machines/state-names';
import { answer, AT, running, send } from './support/machine-steps';
import { healthyStartup, operational } from './support/operational-fixture';

/** The second KEK's rows of docs/lifecycle.md through the machine alone: each effect answered, where the machine goes. */
const SETUP = { type: 'SETUP_HSM', hsmType: 'softhsm', modulePath: '/usr/lib/softhsm/libsofthsm2.so', label: 'Trustpoint-SoftHSM', slot: null };
const failure = { code: 'TOKEN_MISSING', message: 'no token labelled "keyward-second"' };

/** The probe's finding, the first token lost when `kekHealth.primary` is false. */
const probed = (kekHealth?: { primary: boolean; second: boolean }): StartupContext =>
  healthyStartup({ tokenPresent: kekHealth?.primary !== false, kekPresent: kekHealth?.primary !== false, ...(kekHealth ? { kekHealth } : {}) });

describe('the second KEK through the machine', () => {
  it('is added and removed while operational, each an effect of its own; a failure keeps serving with the error', () => {
    const adding = send(operational(), { type: 'ADD_SECOND_KEK', modulePath: '/usr/lib/softhsm/libsofthsm2.so', label: 'keyward-second' });
    expect(running(adding)).toBe('addSecondKek');
    expect(adding.hasTag('operational')).toBe(true);
    const failed = answer(adding, { error: failure });
    expect(stateString(failed)).toBe('operational');
    expect(failed.context.lastError).toMatchObject(failure);
    const removing = send(failed, { type: 'REMOVE_SECOND_KEK' });
    expect(running(removing)).toBe('removeSecondKek');
    expect(removing.context.lastError).toBeNull();
    expect(stateString(answer(removing, { output: {} }))).toBe('operational');
    expect(operational({ storageType: 'software' }).can({ type: 'REMOVE_SECOND_KEK', at: AT } as never)).toBe(false);
  });

  it('replaces a lost first token from the second KEK: token, lost CAs, KEK, wraps; then both KEKs healthy', () => {
    let snapshot = operational({ startup: probed({ primary: false, second: true }) });
    snapshot = send(snapshot, SETUP);
    const effects: string[] = [];
    for (let src = running(snapshot); src !== null; src = running(snapshot)) {
      effects.push(src);
      expect(snapshot.hasTag('operational')).toBe(true);
      snapshot = answer(snapshot, { output: {} });
    }
    expect(effects).toEqual(['setUpToken', 'deactivateTokenCas', 'createKek', 'wrapKeysetUnderPrimary']);
    expect(stateString(snapshot)).toBe('operational');
    expect(snapshot.context.startup?.kekHealth).toEqual({ primary: true, second: true });
    // Restored: a further SETUP_HSM is refused again.
    expect(snapshot.can({ at: AT, ...SETUP } as never)).toBe(false);
  });

  it('refuses SETUP_HSM while operational unless the first KEK is the one lost, with the reason', () => {
    for (const startup of [probed(), probed({ primary: true, second: false })]) {
      const snapshot = operational({ startup });
      expect(snapshot.can({ at: AT, ...SETUP } as never)).toBe(false);
      expect(describeRefusal(snapshot, SETUP)).toMatch(/first KEK was lost and the second KEK kept the keyset/);
    }
    expect(operational({ startup: probed({ primary: false, second: true }) }).can({ at: AT, ...SETUP, hsmType: 'physical' } as never)).toBe(false);
  });

  it('goes back to operation with the error when a step of the replacement fails; SETUP_HSM runs it again', () => {
    let snapshot = send(operational({ startup: probed({ primary: false, second: true }) }), SETUP);
    snapshot = answer(snapshot, { output: {} });
    snapshot = answer(snapshot, { error: failure });
    expect(stateString(snapshot)).toBe('operational');
    expect(snapshot.context.lastError).toMatchObject(failure);
    expect(running(send(snapshot, SETUP))).toBe('setUpToken');
  });
});
