import { migrateToLatest } from '../../db/database';
import { Store } from '../../db/store';
import { DekKeyring } from '../../crypto/dek-keyring';
import type { WrappedKey } from '../../hsm/key-wrapper';
import { engines, freshDatabase, TestDatabase } from '../support/databases';

const wrap = (byte: number, kekId = 'cd'.repeat(16)): WrappedKey => ({ mechanism: 'CKM_AES_KEY_WRAP_PAD', kek: { label: 'trustpoint-kek', id: kekId }, blob: Buffer.alloc(40, byte) });
const CONFIG = { modulePath: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'keyward-second', kekLabel: 'trustpoint-kek', kekId: 'cd'.repeat(16), pinSource: 'secrets:hsm-second-pin' };

/** The second KEK's tables (migration 016) on both engines: absent before the migration, then kept, replaced and removed whole. */
describe.each(engines())('the second KEK repository on %s', (engine) => {
  let database: TestDatabase;
  let store: Store;

  beforeAll(async () => {
    database = await freshDatabase(engine, 'second-kek');
    store = Store.open(database.config, new DekKeyring());
  });

  afterAll(async () => {
    await store.close();
    await database.drop();
  });

  it('reads as nothing configured before its migration ran', async () => {
    expect(await store.secondKek.config()).toBeNull();
    expect((await store.secondKek.wraps()).size).toBe(0);
    expect(await store.secondKek.health()).toEqual([]);
    await store.secondKek.recordHealth('primary', false, 'TOKEN_MISSING');
    await migrateToLatest(store.db);
    expect(await store.secondKek.health()).toEqual([]);
  });

  it('keeps the configuration and a wrap per DEK; a rotation adds and retires wraps; removal takes all', async () => {
    await store.secondKek.save(CONFIG, new Map([['dek-1', wrap(1)]]));
    expect(await store.secondKek.config()).toMatchObject(CONFIG);
    await store.secondKek.putWraps(
      new Map([
        ['dek-2', wrap(2)],
        ['dek-1', wrap(3)],
      ]),
    );
    expect(await store.secondKek.wraps()).toEqual(
      new Map([
        ['dek-1', wrap(3)],
        ['dek-2', wrap(2)],
      ]),
    );
    await store.secondKek.deleteWraps(['dek-1']);
    expect([...(await store.secondKek.wraps()).keys()]).toEqual(['dek-2']);
    await store.secondKek.recordHealth('second', true, null);
    await store.secondKek.remove();
    expect(await store.secondKek.config()).toBeNull();
    expect((await store.secondKek.wraps()).size).toBe(0);
    expect(await store.secondKek.health()).toEqual([]);
    await expect(store.secondKek.putWraps(new Map([['dek-3', wrap(4)]]))).rejects.toThrow(/no second KEK/);
  });

  it('moves a KEK\'s "since" only when it turns healthy or unhealthy', async () => {
    await store.secondKek.recordHealth('primary', true, null, '2026-01-01T00:00:00.000Z');
    await store.secondKek.recordHealth('primary', false, 'TOKEN_MISSING', '2026-01-02T00:00:00.000Z');
    await store.secondKek.recordHealth('primary', false, 'KEK_MISSING', '2026-01-03T00:00:00.000Z');
    expect(await store.secondKek.health()).toEqual([{ kek: 'primary', healthy: false, since: '2026-01-02T00:00:00.000Z', problem: 'KEK_MISSING' }]);
    await store.secondKek.recordHealth('primary', true, null, '2026-01-04T00:00:00.000Z');
    expect(await store.secondKek.health()).toEqual([{ kek: 'primary', healthy: true, since: '2026-01-04T00:00:00.000Z', problem: null }]);
  });
});
