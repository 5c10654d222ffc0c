import { join } from 'node:path';
import type { Knex } from 'knex';
import { loadConfig } from '../../server/config';
import { KeywardRuntime } from '../../server/runtime';
import { engines, freshDatabase, TestDatabase } from '../support/databases';
import { testDir } from '../support/run-dir';
import type { StorageConfigRow } from '../../db/rows';

/**
 * The storage type, token configuration and key material are kept in memory between lifecycle
 * versions (the web server's watcher reads the version every interval), and the SQLite reads run on
 * read connections of their own. Two runtimes on one database stand for two processes (the web
 * server and the CLI).
 */
jest.setTimeout(120_000);

function runtimeOn(database: TestDatabase, name: string): KeywardRuntime {
  const home = testDir(`read-cache-${name}`);
  const env = database.config.client === 'pg' ? { DATABASE_URL: database.config.connectionString } : { KEYWARD_SQLITE: database.config.filename };
  return new KeywardRuntime(loadConfig({ KEYWARD_HOME: home, SOFTHSM2_CONF: join(home, 'softhsm2.conf'), KEYWARD_TLS_SANS: 'localhost,127.0.0.1', ...env }));
}

/** The statements `db` runs while `work` does. */
async function queriesDuring(db: Knex, work: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const listener = (query: { sql: string }) => seen.push(query.sql);
  db.on('query', listener);
  try {
    await work();
  } finally {
    db.off('query', listener);
  }
  return seen;
}

describe.each(engines())('kept configuration and read connections on %s', (engine) => {
  let database: TestDatabase;
  let web: KeywardRuntime;
  let cli: KeywardRuntime;

  beforeAll(async () => {
    database = await freshDatabase(engine, 'readcache');
    web = runtimeOn(database, 'web');
    cli = runtimeOn(database, 'cli');
    expect((await web.boot('test')).outcome).toBe('applied');
    expect((await web.send('SELECT_STORAGE', { storageType: 'software' }, {}, 'test')).outcome).toBe('applied');
  });

  afterAll(async () => {
    await web.close();
    await cli.close();
    await database.drop();
  });

  afterEach(() => web.store.cache.disable());

  it('reads the storage type, token and key material once per lifecycle version while watched', async () => {
    web.store.cache.enable(60_000);
    await web.engine.load();
    const first = await queriesDuring(web.store.reader, async () => {
      await web.store.storage.storageType();
      await web.store.storage.token();
      await web.store.keyMaterial.current();
    });
    expect(first).toHaveLength(3);
    const again = await queriesDuring(web.store.reader, async () => {
      for (let i = 0; i < 5; i++) {
        expect(await web.store.storage.storageType()).toBe('software');
        await web.store.storage.token();
        await web.store.keyMaterial.current();
        await web.store.secrets.open('devices', { est_password: null }, ['est_password']);
      }
    });
    expect(again).toEqual([]);
  });

  it('serves a change another process committed as soon as this process reads the new version', async () => {
    web.store.cache.enable(60_000);
    await web.engine.load();
    expect(await web.store.storage.storageType()).toBe('software');
    // The other process's effect writes, then its event commits.
    await cli.store.storage.setStorageType('softhsm');
    try {
      expect((await cli.boot('test')).outcome).toBe('applied');
      await web.engine.load(); // the watcher's next reading
      expect(await web.store.storage.storageType()).toBe('softhsm');
      expect(await web.store.secrets.codec()).toHaveProperty('encrypts', true);
    } finally {
      await cli.store.storage.setStorageType('software');
      await cli.boot('test');
    }
    await web.engine.load();
    expect(await web.store.storage.storageType()).toBe('software');
  });

  it("reads fresh when the version was not read lately, and after this process's own writes", async () => {
    web.store.cache.enable(200);
    await web.engine.load();
    expect(await web.store.storage.storageType()).toBe('software');
    await cli.store.storage.setStorageType('physical_hsm');
    try {
      await new Promise((resolve) => setTimeout(resolve, 300)); // the watcher stopped answering
      expect(await web.store.storage.storageType()).toBe('physical_hsm');
    } finally {
      await cli.store.storage.setStorageType('software');
    }
    web.store.cache.enable(60_000);
    await web.engine.load();
    expect(await web.store.storage.storageType()).toBe('software');
    await web.store.storage.setStorageType('softhsm');
    expect(await web.store.storage.storageType()).toBe('softhsm');
    await web.store.storage.setStorageType('software');
    expect(await web.store.storage.storageType()).toBe('software');
  });

  it('never lets a BOOT probe use kept values', async () => {
    web.store.cache.enable(60_000);
    await web.engine.load();
    expect(await web.store.storage.storageType()).toBe('software');
    // A write that no event of this process saw (a restore swaps the store so).
    await cli.store.storage.setStorageType('softhsm');
    try {
      const probed = await queriesDuring(web.store.reader, () => web.boot('test'));
      expect(probed.some((sql) => sql.includes('key_storage_config'))).toBe(true);
      expect((await web.engine.load()).snapshot.context.startup?.storageType).toBe('softhsm');
    } finally {
      await cli.store.storage.setStorageType('software');
      await web.boot('test');
    }
  });

  if (engine === 'sqlite') {
    it('reads on its own connections only what is committed, without blocking the writer or being blocked', async () => {
      const { db, reader } = web.store;
      expect(reader).not.toBe(db);
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let inside!: () => void;
      const entered = new Promise<void>((resolve) => (inside = resolve));
      const writing = db.transaction(async (trx) => {
        await trx('key_storage_config').where({ id: 1 }).update({ storage_type: 'softhsm' });
        inside();
        await held;
      });
      await entered;
      // The writer holds an open write transaction: a read answers at once, with the committed state.
      const during = await Promise.race([
        reader<StorageConfigRow>('key_storage_config').where({ id: 1 }).first('storage_type'),
        new Promise((_, reject) => setTimeout(() => reject(new Error('the read waited for the writer')), 2000)),
      ]);
      expect(during).toEqual({ storage_type: 'software' });
      release();
      await writing;
      expect(await reader('key_storage_config').where({ id: 1 }).first('storage_type')).toEqual({ storage_type: 'softhsm' });
      await db('key_storage_config').where({ id: 1 }).update({ storage_type: 'software' });
      // A read connection never writes.
      await expect(reader('key_storage_config').where({ id: 1 }).update({ storage_type: 'softhsm' })).rejects.toThrow(/readonly|read-only/i);
      expect(await db('key_storage_config').where({ id: 1 }).first('storage_type')).toEqual({ storage_type: 'software' });
    });
  }
});
