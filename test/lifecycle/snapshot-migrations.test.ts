import { MACHINE_VERSION } from '../../machines/lifecycle-machine';
import { Install } from '../support/install';
import type { LifecycleRow } from '../../db/rows';

/**
 * Machine version 2 moved the lost token's CA deactivation from BOOT (and DECLARE_TOKEN_LOST) to
 * after the new token's set-up. A version-1 lifecycle persisted inside the old deactivation states
 * (a crash there) still loads, BOOTs on, and deactivates nothing until a new token is set up.
 */
jest.setTimeout(120_000);

describe('snapshot migrations from version 1 on', () => {
  let i: Install;
  afterAll(async () => {
    await i?.close();
  });

  it.each([
    [{ startup: { restoring: { RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED: 'deactivatingLostCas' } } }, 'startup.restoring.RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED.issuingTemporaryTlsForHsmSetup'],
    [{ outage: 'deactivatingLostCas' }, 'outage.issuingTemporaryTls'],
  ])('a version-1 lifecycle in %j loads as %s and BOOTs on', async (oldValue, migrated) => {
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
    expect(stored?.machine_version).toBe(MACHINE_VERSION);
  });

  // Version 3 added the key-rotation states and `keyRotation`: a version-2 context has no such field.
  it('a version-2 operational lifecycle loads with no rotation under way and accepts the rotations', async () => {
    const row = await i.runtime.store.db<LifecycleRow>('lifecycle').first();
    const snapshot = JSON.parse(row!.snapshot) as { context: Record<string, unknown> };
    const { keyRotation: _dropped, ...context } = snapshot.context;
    await i.runtime.store.db('lifecycle').update({ machine_version: 2, snapshot: JSON.stringify({ ...snapshot, value: 'operational', context, pendingEffect: null }) });
    await i.restart();
    const inspection = await i.runtime.engine.inspect({ historyLimit: 0 });
    expect(inspection.state).toBe('operational');
    expect(inspection.context.keyRotation).toBeNull();
    expect(inspection.accepts).toEqual(expect.arrayContaining(['ROTATE_KEK', 'ROTATE_DEK', 'CHANGE_BACKUP_PASSWORD', 'CHANGE_TOKEN_PIN']));
  });
});
