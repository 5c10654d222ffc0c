import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import knex, { type Knex } from 'knex';
import { migrateToLatest, openDatabase } from '../../db/database';
import {
  DatabaseBackup,
  DatabaseExport,
  type ExportDescriptor,
  copySqliteDatabase,
  createArchive,
  extractArchive,
  importDatabase,
  migrateToSchemaVersion,
  schemaVersionOf,
  verifyArchive,
} from '../../backup';
import { DatabaseCopyError } from '../../backup/database-errors';
import { type Engine, engines, freshDatabase, type TestDatabase } from '../support/databases';
import { testDir } from '../support/run-dir';
import { newSecret } from '../support/secrets';
import { dump, seed, tablesOf, writeEntries } from './database-support';
import { migrationSource } from '../../db/migrations';

const engineName = (engine: Engine) => (engine === 'postgres' ? 'postgresql' : 'sqlite');
const hasPostgres = engines().includes('postgres');

async function latestMigration(): Promise<string> {
  return [...(await migrationSource.getMigrations([]))].sort().at(-1)!;
}

async function migrated(engine: Engine, name: string): Promise<{ database: TestDatabase; db: Knex }> {
  const database = await freshDatabase(engine, name);
  const db = openDatabase(database.config);
  await migrateToLatest(db);
  return { database, db };
}

async function expectCopyError(promise: Promise<unknown>, code: string): Promise<DatabaseCopyError> {
  const error = await promise.then(
    () => {
      throw new Error(`expected ${code}`);
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DatabaseCopyError);
  expect((error as DatabaseCopyError).code).toBe(code);
  return error as DatabaseCopyError;
}

/** A loop of small transactions on its own connection, counting its commits. */
function writerLoop(body: (trx: Knex.Transaction, n: number) => Promise<void>, db: Knex): { committed: () => number; stop: () => Promise<void> } {
  let running = true;
  let committed = 0;
  const done = (async () => {
    while (running) {
      const n = committed + 1;
      await db.transaction((trx) => body(trx, n));
      committed = n;
    }
  })();
  return {
    committed: () => committed,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 20000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('the SQLite online copy', () => {
  it('is consistent while another connection keeps inserting', async () => {
    const { database, db } = await migrated('sqlite', 'online-copy');
    await db.schema.createTable('counter', (t) => {
      t.integer('n').primary();
      t.binary('filler');
    });
    const prefill = 30000;
    await db.transaction(async (trx) => {
      for (let n = 1; n <= prefill; n += 500) {
        await trx('counter').insert(Array.from({ length: 500 }, (_, i) => ({ n: n + i, filler: randomBytes(300) })));
      }
    });
    // Its own connection, as the server's would be: 5 rows per transaction.
    const writer = openDatabase(database.config);
    const loop = writerLoop(async (trx, n) => {
      const first = prefill + (n - 1) * 5 + 1;
      await trx('counter').insert(Array.from({ length: 5 }, (_, i) => ({ n: first + i, filler: null })));
    }, writer);
    const copy = join(testDir('online-copy-out'), 'copy.sqlite');
    let opened: Knex | null = null;
    try {
      await until(() => loop.committed() >= 10);
      const before = loop.committed();
      await copySqliteDatabase(database.file!, copy);
      const after = loop.committed();
      // The writer went on committing while VACUUM INTO ran (about 9 MB): an online copy, not a lock.
      expect(after - before).toBeGreaterThan(0);
      await until(() => loop.committed() >= after + 10);
      await loop.stop();
      expect(statSync(copy).mode & 0o777).toBe(0o600);
      opened = knex({ client: 'sqlite3', connection: { filename: copy }, useNullAsDefault: true });
      expect(await opened.raw('PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);
      const [{ count, max, min }] = (await opened('counter').select(opened.raw('count(*) AS count, max(n) AS max, min(n) AS min'))) as [{ count: number; max: number; min: number }];
      // A consistent prefix: contiguous rows, whole transactions only, taken mid-stream.
      expect(min).toBe(1);
      expect(max).toBe(count);
      expect((count - prefill) % 5).toBe(0);
      expect(count).toBeGreaterThanOrEqual(prefill + before * 5);
      expect(count).toBeLessThan(prefill + loop.committed() * 5);
      expect(await schemaVersionOf(opened)).toBe(await latestMigration());
    } finally {
      await loop.stop();
      await opened?.destroy();
      await writer.destroy();
      await db.destroy();
    }
  });

  it('never writes over an existing file', async () => {
    const { database, db } = await migrated('sqlite', 'copy-exists');
    const target = join(testDir('copy-exists-out'), 'taken.sqlite');
    writeFileSync(target, 'keep');
    await expect(copySqliteDatabase(database.file!, target)).rejects.toMatchObject({ code: 'OUTPUT_EXISTS' });
    expect(readFileSync(target, 'utf8')).toBe('keep');
    await db.destroy();
  });
});

describe.each(engines())('a backup of a %s database', (engine) => {
  const passphrase = newSecret('db-archive-passphrase');
  let source: { database: TestDatabase; db: Knex };
  let expected: Awaited<ReturnType<typeof dump>>;
  let extracted: string;
  let descriptor: ExportDescriptor;

  beforeAll(async () => {
    source = await migrated(engine, `src-${engine}`);
    await seed(source.db);
    expected = await dump(source.db);
    const work = testDir(`backup-work-${engine}`);
    const backup = new DatabaseBackup(source.database.config, { workDir: work, pageSize: 2, includeExport: true });
    const path = join(testDir(`backup-${engine}`), 'backup.kwa');
    await createArchive(path, passphrase, backup, {
      manifestExtras: async () => ({ schemaVersion: backup.descriptor!.schemaVersion, databaseEngine: backup.descriptor!.engine, logChainHead: null }),
    });
    descriptor = backup.descriptor!;
    const verified = await verifyArchive(path, passphrase);
    expect(verified.manifest).toMatchObject({ schemaVersion: await latestMigration(), databaseEngine: engineName(engine) });
    const names = verified.entries.map((entry) => entry.name);
    expect(names).toEqual([...(engine === 'sqlite' ? ['database/keyward.sqlite'] : []), ...descriptor.tables.map((table) => `database/tables/${table.name}.jsonl`), 'database/export.json']);
    extracted = join(testDir(`restore-${engine}`), 'extracted');
    await extractArchive(path, passphrase, extracted);
  });

  afterAll(async () => {
    await source.db.destroy();
    await source.database.drop();
  });

  it('exports every table of the schema, knex_migrations included, its lock table not', async () => {
    expect(descriptor.tables.map((table) => table.name).sort()).toEqual(await tablesOf(source.db));
    expect(descriptor.tables.map((table) => table.name)).toContain('knex_migrations');
    expect(descriptor.migrations).toEqual(await migrationSource.getMigrations([]));
    expect(descriptor.engine).toBe(engineName(engine));
    // Parents before children: cas references credentials.
    const order = descriptor.tables.map((table) => table.name);
    expect(order.indexOf('credentials')).toBeLessThan(order.indexOf('cas'));
    const keyMaterial = descriptor.tables.find((table) => table.name === 'key_material')!;
    expect(keyMaterial.columns.find((column) => column.name === 'wrapped_dek')!.type).toBe('binary');
    expect(keyMaterial.serial).toEqual({ column: 'id', next: 4 });
    expect(keyMaterial.rows).toBe(2);
    const lines = readFileSync(join(extracted, 'database', 'tables', 'key_material.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { wrapped_dek: string; gcm_encryptions: number });
    expect(Buffer.from(lines[0]!.wrapped_dek, 'base64').subarray(0, 3)).toEqual(Buffer.from([0, 255, 0]));
    expect(lines[0]!.gcm_encryptions).toBe(2 ** 40 + 7);
  });

  it.each(engines())('restores onto an empty %s database with identical rows, ids and sequences', async (target) => {
    const restored = await migrated(target, `dst-${engine}-${target}`);
    try {
      const summary = await importDatabase(restored.db, join(extracted, 'database'));
      expect(summary.tables.find((table) => table.name === 'devices')!.rows).toBe(3);
      expect(await dump(restored.db)).toEqual(expected);
      // The next ids continue after the source's, skipping the deleted row's id 3.
      await restored.db('key_material').insert({ dek_key_id: 'ffffffffffffffff', gcm_encryptions: 0, created_at: 'x', updated_at: 'x' });
      expect(await restored.db('key_material').where({ dek_key_id: 'ffffffffffffffff' }).pluck('id')).toEqual([4]);
      await restored.db('devices').insert({ name: 'new', created_at: 'x' });
      expect(await restored.db('devices').where({ name: 'new' }).pluck('id')).toEqual([5]);
    } finally {
      await restored.db.destroy();
      await restored.database.drop();
    }
  });

  it('refuses a database that is not empty, or at another schema version, and rolls back a failed import', async () => {
    const restored = await migrated('sqlite', `refuse-${engine}`);
    try {
      await restored.db('devices').insert({ name: 'existing', created_at: 'x' });
      await expectCopyError(importDatabase(restored.db, join(extracted, 'database')), 'DATABASE_NOT_EMPTY');
      await restored.db('devices').delete();

      const altered = testDir(`altered-${engine}`);
      await writeEntries(exportFiles(join(extracted, 'database')), altered);
      const json = JSON.parse(readFileSync(join(altered, 'export.json'), 'utf8')) as { migrations: string[] };
      writeFileSync(join(altered, 'export.json'), JSON.stringify({ ...json, migrations: [...json.migrations, '999_future'] }));
      const mismatch = await expectCopyError(importDatabase(restored.db, altered), 'SCHEMA_MISMATCH');
      expect(mismatch.message).toContain('999_future');

      // A damaged last table: nothing of the earlier tables stays behind.
      writeFileSync(join(altered, 'export.json'), JSON.stringify(json));
      const last = descriptor.tables.at(-1)!.name;
      writeFileSync(join(altered, 'tables', `${last}.jsonl`), `${readFileSync(join(altered, 'tables', `${last}.jsonl`), 'utf8')}{"broken": \n`);
      const broken = await expectCopyError(importDatabase(restored.db, altered), 'EXPORT_INVALID');
      expect(broken.message).not.toContain('broken');
      for (const table of (await tablesOf(restored.db)).filter((name) => name !== 'knex_migrations')) expect(await restored.db(table).count({ n: '*' })).toEqual([{ n: 0 }]);
    } finally {
      await restored.db.destroy();
    }
  });
});

describe('an export taken at an older schema version', () => {
  it('imports into a database migrated to that version, which then migrates forward', async () => {
    const target = engines().at(-1)!;
    const source = await freshDatabase('sqlite', 'older-src');
    const sourceDb = openDatabase(source.config);
    const restored = await freshDatabase(target, 'older-dst');
    const restoredDb = openDatabase(restored.config);
    try {
      expect(await migrateToSchemaVersion(sourceDb, '001_initial')).toEqual(['001_initial']);
      await seed(sourceDb);
      const expected = await dump(sourceDb);
      const dir = testDir('older-export');
      await writeEntries(new DatabaseExport(sourceDb), dir);

      await expectCopyError(migrateToSchemaVersion(restoredDb, '999_from_the_future'), 'SCHEMA_MISMATCH');
      await migrateToSchemaVersion(restoredDb, '001_initial');
      await importDatabase(restoredDb, dir);
      expect(await dump(restoredDb)).toEqual(expected);
      await migrateToLatest(restoredDb);
      expect(await schemaVersionOf(restoredDb)).toBe(await latestMigration());
      expect(await restoredDb('devices').count({ n: '*' })).toEqual([{ n: target === 'postgres' ? '3' : 3 }]);
    } finally {
      await sourceDb.destroy();
      await restoredDb.destroy();
      await restored.drop();
    }
  });
});

/** The files of an extracted export as entries, to copy and alter them. */
async function* exportFiles(dir: string): AsyncGenerator<{ name: string; data: Buffer }> {
  yield { name: 'export.json', data: readFileSync(join(dir, 'export.json')) };
  for (const file of readdirSync(join(dir, 'tables'))) yield { name: `tables/${file}`, data: readFileSync(join(dir, 'tables', file)) };
}

(hasPostgres ? describe : describe.skip)('the PostgreSQL export under concurrent writes', () => {
  it('reads one snapshot of every table (REPEATABLE READ) and imports identically into PostgreSQL and SQLite', async () => {
    const { database, db } = await migrated('postgres', 'pg-concurrent');
    await seed(db);
    const writer = openDatabase(database.config);
    const intoPg = await migrated('postgres', 'pg-concurrent-dst');
    const intoSqlite = await migrated('sqlite', 'pg-concurrent-dst');
    // Each transaction adds a device and its transition_log row: in any snapshot they come in pairs.
    const loop = writerLoop(async (trx, n) => {
      await trx('devices').insert({ name: `loop-${n}`, created_at: 'x' });
      await trx('transition_log').insert({ deployment: 'loop', revision: n, event_type: 'E', source: 's', from_state: 'a', to_state: 'b', payload: '{}', created_at: 'x' });
    }, writer);
    try {
      await until(() => loop.committed() >= 20);
      const dir = testDir('pg-concurrent-export');
      const started = loop.committed();
      await writeEntries(new DatabaseExport(db, { pageSize: 5 }), dir, async (name) => {
        if (name !== 'tables/devices.jsonl') return;
        // Committed after devices was read and before transition_log is: it must be in neither.
        await writer.transaction(async (trx) => {
          await trx('devices').insert({ name: 'between', created_at: 'x' });
          await trx('transition_log').insert({ deployment: 'between', revision: 1, event_type: 'E', source: 's', from_state: 'a', to_state: 'b', payload: '{}', created_at: 'x' });
        });
        await until(() => loop.committed() >= started + 5);
      });
      const finished = loop.committed();
      await loop.stop();
      expect(finished).toBeGreaterThan(started); // the writer kept committing during the export

      const rows = (table: string) =>
        readFileSync(join(dir, 'tables', `${table}.jsonl`), 'utf8')
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line) as { name: string; deployment: string; revision: number });
      const devices = rows('devices')
        .map((row) => row.name)
        .filter((name) => name.startsWith('loop-') || name === 'between');
      const log = rows('transition_log').filter((row) => row.deployment !== 'default');
      expect(devices).not.toContain('between');
      expect(log.map((row) => row.deployment)).not.toContain('between');
      const k = devices.length;
      expect(k).toBeGreaterThanOrEqual(started);
      expect(k).toBeLessThan(finished);
      expect(devices).toEqual(Array.from({ length: k }, (_, i) => `loop-${i + 1}`));
      expect(log.map((row) => row.revision)).toEqual(Array.from({ length: k }, (_, i) => i + 1));

      // The source as of the snapshot: everything but the rows committed after it.
      const snapshot = await dump(db);
      snapshot.devices = snapshot.devices!.filter((row) => row.name !== 'between' && !(String(row.name).startsWith('loop-') && Number(String(row.name).slice(5)) > k));
      snapshot.transition_log = snapshot.transition_log!.filter((row) => row.deployment === 'default' || (row.deployment === 'loop' && (row.revision as number) <= k));
      await importDatabase(intoPg.db, dir);
      await importDatabase(intoSqlite.db, dir);
      const pg = await dump(intoPg.db);
      expect(pg).toEqual(snapshot);
      expect(await dump(intoSqlite.db)).toEqual(pg);
    } finally {
      await loop.stop();
      await Promise.all([intoPg.db.destroy(), intoSqlite.db.destroy(), writer.destroy(), db.destroy()]);
      await Promise.all([intoPg.database.drop(), database.drop()]);
    }
  });
});
