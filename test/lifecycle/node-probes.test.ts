import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Pkcs11Token } from '../../hsm/pkcs11-token';
import { NodeHealth } from '../../server/node-health';
import { REPROBE } from '../../server/runtime';
import { Install } from '../support/install';

/**
 * A node's heartbeat where its token is gone, in-process against a real SoftHSM2 install: the token
 * is probed again before a node that serves (in operation or in the set-up) turns unready, and only
 * once in a recovery (where it is missing for a while, and a longer beat would hold back the one that
 * follows the recovery's end).
 */
jest.setTimeout(120_000);

describe('the heartbeat of a node whose token is gone', () => {
  let install: Install;

  beforeAll(async () => {
    install = await Install.create('node-probes');
    await install.boot();
    await install.walkWizard('softhsm');
    for (const entry of readdirSync(install.tokenDir)) rmSync(join(install.tokenDir, entry), { recursive: true });
  });

  afterAll(() => install.close());

  /** How many times one beat probed the token, with the lifecycle in `state`. */
  async function probesOfOneBeat(state: string): Promise<number> {
    const health = new NodeHealth(install.runtime, { KEYWARD_HEARTBEAT_SECONDS: '3600' });
    const probe = jest.spyOn(Pkcs11Token.prototype, 'probe');
    const quiet = { warn: () => undefined, info: () => undefined };
    try {
      await health.start({ lifecycleState: () => state, watcherHealthy: () => true, servedFingerprint: () => '', logger: quiet }, () => undefined);
      await health.stop();
      expect(health.readiness.ready).toBe(false);
      return probe.mock.calls.length;
    } finally {
      probe.mockRestore();
    }
  }

  it('operational: probed again before the node turns unready', async () => {
    expect(await probesOfOneBeat('operational')).toBe(1 + REPROBE.times);
  });

  it('in the set-up: probed again too (the node serves the wizard)', async () => {
    expect(await probesOfOneBeat('wizard.hsmSetup.waiting')).toBe(1 + REPROBE.times);
  });

  it('in auto-restore: probed once', async () => {
    expect(await probesOfOneBeat('autoRestore.hsmSetup.waiting')).toBe(1);
  });
});
