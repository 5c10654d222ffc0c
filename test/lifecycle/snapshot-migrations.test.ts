import { MACHINE_VERSION } from '../../machines/lifecycle-machine';
import { Install } from '../support/install';
import type { LifecycleRow } from '../../db/rows';

/**
 * Machine version 2 moved the lost token's CA deactivation from BOOT (and DECLARE_TOKEN_LOST) to
 * after the new token's set-up. A version-1 lifecycle persisted inside the old deactivation states
 * (a crash there) still loads, BOOTs on, and deactivates nothing until a new token is set up.
 */
jest.setTimeout(120_000);

describe('snapshot migration 1 → 2', () => {
  let i: Install;
  afterAll(async () => {
    await i?.close();
  });

  it.each([
    [{ startup: { restoring: { RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED: 'deactivatingLostCas' } } }, 'startup.restoring.RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED.issuingTemporaryTlsForHsmSetup'],
    [{ outage: 'deactivatingLostCas' }, 'outage.issuingTemporaryTls'],
  ])('a version-1 lifecycle in %j loads as %s and BOOTs on', async (oldValue, migrated) => {
    expect(MACHINE_VERSION).toBe(2);
    i ??= await (async () => {
      const created = await Install.create('snapshot-migration');
      await created.boot();
      await created.walkWizard('softhsm');
      await created.runtime.store.cas.create({ name: 'token-ca', keyLocation: 'token', tokenKeyLabel: 'ca-key' });
      return created;
    })();
    const row = await i.runtime.store.db<LifecycleRow>('lifecycle').first();
    const snapshot = JSON.parse(row!.snapshot) as Record<string, unknown>;
    await i.runtime.store.db('lifecycle').update({ machine_version: 1, snapshot: JSON.stringify({ ...snapshot, value: oldValue, pendingEffect: null }), state: 'x' });
    await i.restart();
    expect((await i.runtime.engine.inspect({ historyLimit: 0 })).state).toBe(migrated);
    expect((await i.boot()).state).toBe('operational');
    expect((await i.runtime.store.cas.list())[0]).toMatchObject({ active: true });
    const stored = await i.runtime.store.db<LifecycleRow>('lifecycle').first('machine_version');
    expect(stored?.machine_version).toBe(2);
  });
});
