import { migrateToLatest } from '../../db/database';
import { Store } from '../../db/store';
import { DekKeyring } from '../../crypto/dek-keyring';
import { engines, freshDatabase, TestDatabase } from '../support/databases';

/**
 * Two processes write one database at once: the server creating devices while the CLI runs a DEK
 * rotation's batches. Two stores on one database stand for them. A write transaction that read first
 * must not fail because the other committed meanwhile (SQLite in WAL mode answers SQLITE_BUSY at once,
 * without waiting, when a deferred transaction's read snapshot is stale at its first write): each
 * write waits its turn, as busy_timeout promises.
 */
jest.setTimeout(60_000);

describe.each(engines())('concurrent writers on %s', (engine) => {
  let database: TestDatabase;
  let stores: Store[] = [];

  beforeAll(async () => {
    database = await freshDatabase(engine, 'concurrent-writes');
    stores = [Store.open(database.config, new DekKeyring()), Store.open(database.config, new DekKeyring())];
    await migrateToLatest(stores[0]!.db);
  });

  afterAll(async () => {
    for (const store of stores) await store.close();
    await database.drop();
  });

  it('two stores creating devices side by side both succeed every time', async () => {
    const failures: string[] = [];
    const writer = async (store: Store, tag: string) => {
      for (let i = 0; i < 150; i++) {
        try {
          await store.devices.create({ name: `${tag}-${i}`, estPassword: `est-${tag}-${i}-secret` });
        } catch (error) {
          // The driver's message quotes the statement with its values: the code alone is kept.
          failures.push(`${tag}-${i}: ${(error as { code?: string }).code ?? 'error'}`);
        }
      }
    };
    await Promise.all([writer(stores[0]!, 'server'), writer(stores[1]!, 'cli')]);
    expect(failures).toEqual([]);
    expect((await stores[0]!.devices.list()).length).toBe(300);
  });
});
