import { randomBytes } from 'node:crypto';
import { migrateToLatest } from '../../db/database';
import { Store } from '../../db/store';
import { DekKeyring, generateDek } from '../../crypto/dek-keyring';
import type { WrappedKey } from '../../hsm/key-wrapper';
import { engines, freshDatabase, TestDatabase } from '../support/databases';

/**
 * Two processes write one database at once: the server creating devices while the CLI runs a DEK
 * rotation's batches. Two stores on one database stand for them. A write transaction that read first
 * must not fail because the other committed meanwhile (SQLite in WAL mode answers SQLITE_BUSY at once,
 * without waiting, when a deferred transaction's read snapshot is stale at its first write), and a
 * writer must not starve behind the job's back-to-back batches: each write waits its turn, briefly.
 */
jest.setTimeout(120_000);

// A wrapped DEK these tests never unwrap: the DEKs are installed in the keyrings directly.
const unusedWrap: WrappedKey = { mechanism: 'CKM_AES_KEY_WRAP', kek: { label: 'trustpoint-kek', id: 'ab'.repeat(16) }, blob: Buffer.alloc(40, 1) };

describe.each(engines())('concurrent writers on %s', (engine) => {
  let database: TestDatabase;
  let stores: Store[] = [];

  beforeEach(async () => {
    database = await freshDatabase(engine, 'concurrent-writes');
    stores = [Store.open(database.config, new DekKeyring()), Store.open(database.config, new DekKeyring())];
    await migrateToLatest(stores[0]!.db);
  });

  afterEach(async () => {
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

  it('a device created while another process re-encrypts every value waits its turn (five seconds at most on a loaded machine; it starved for 8 s and failed outright before)', async () => {
    const keyrings = [new DekKeyring(), new DekKeyring()];
    stores = [Store.open(database.config, keyrings[0]!), Store.open(database.config, keyrings[1]!), ...stores];
    const [server, cli] = stores as [Store, Store];
    const [old, next] = [generateDek(), generateDek()];
    await server.secrets.changeStorageType('softhsm');
    await server.keyMaterial.create(old.keyId, unusedWrap);
    for (const keyring of keyrings) keyring.install(old);
    // 40,000 values under the old DEK, then the new one promoted, as ROTATE_DEK's first steps leave them.
    const codec = await server.secrets.codec();
    const at = new Date().toISOString();
    await server.db.transaction(async (trx) => {
      for (let start = 0; start < 20_000; start += 400) {
        const rows = Array.from({ length: 400 }, (_, k) => ({
          name: `bulk-${start + k}`,
          est_password: codec.seal(randomBytes(18).toString('base64url'), { table: 'devices', column: 'est_password' }),
          cmp_shared_secret: codec.seal(randomBytes(18).toString('base64url'), { table: 'devices', column: 'cmp_shared_secret' }),
          created_at: at,
        }));
        await trx('devices').insert(rows);
      }
    });
    await server.keyMaterial.create(next.keyId, unusedWrap, 'pending');
    await server.keyMaterial.promote(next.keyId);
    for (const keyring of keyrings) keyring.install(next);

    let jobDone = false;
    const job = cli.reencryption.run(next.keyId).then(
      (result) => ({ values: result.values, problem: null }),
      (error: { code?: string }) => ({ values: 0, problem: error.code ?? 'error' }),
    );
    void job.finally(() => (jobDone = true));
    const writes: Array<{ ms: number; problem: string | null }> = [];
    for (let i = 0; !jobDone; i++) {
      const started = Date.now();
      let problem: string | null = null;
      try {
        await server.devices.create({ name: `during-${i}`, estPassword: `est-during-${i}-secret` });
      } catch (error) {
        problem = (error as { code?: string }).code ?? 'error';
      }
      writes.push({ ms: Date.now() - started, problem });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await job).toEqual({ values: 40_000, problem: null });
    expect(writes.length).toBeGreaterThan(3);
    expect(writes.filter((w) => w.problem !== null || w.ms > 5000)).toEqual([]);
  });
});
