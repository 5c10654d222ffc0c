import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Knex } from 'knex';
import { migrationSource } from '../db/migrations';
import type { DatabaseEngine } from './archive-manifest';
import { DatabaseCopyError, driverCode } from './database-errors';
import { EXPORT_DESCRIPTOR, EXPORT_FORMAT, EXPORT_VERSION, type ExportDescriptor, tableFile } from './database-export';
import { type LogicalType, MIGRATIONS_TABLE, type TableInfo, appliedMigrations, engineOf, readSchema } from './database-schema';
import { decodeValue } from './database-values';

const LOGICAL_TYPES: ReadonlySet<string> = new Set<LogicalType>(['integer', 'boolean', 'binary', 'text', 'timestamp', 'json', 'float', 'decimal']);
const MAX_BOUND_PARAMETERS = 999; // SQLite's historical SQLITE_MAX_VARIABLE_NUMBER

export interface ImportOptions {
  onProgress?: (progress: { table: string; rows: number }) => void;
}

export interface ImportSummary {
  engine: DatabaseEngine;
  schemaVersion: string | null;
  tables: Array<{ name: string; rows: number }>;
}

/**
 * Loads a logical export (from either engine) into an EMPTY database of either engine that has been
 * migrated to the export's schema version, in one transaction, keeping every id. knex_migrations is
 * compared by name, not copied: the target's own rows already record the same migrations. Every
 * id sequence is then set to what the source would have handed out next.
 */
export async function importDatabase(db: Knex, exportDir: string, options: ImportOptions = {}): Promise<ImportSummary> {
  const descriptor = await readDescriptor(exportDir);
  const engine = engineOf(db);
  const summary: ImportSummary = { engine, schemaVersion: descriptor.schemaVersion, tables: [] };
  await db.transaction(async (trx) => {
    // Foreign keys are checked at commit, should the order below ever meet a cycle.
    if (engine === 'sqlite') await trx.raw('PRAGMA defer_foreign_keys = ON');
    const tables = await readSchema(trx, engine);
    await checkCompatible(trx, tables, descriptor);
    const exported = new Map(descriptor.tables.map((table) => [table.name, table]));
    for (const table of tables) {
      if (table.name === MIGRATIONS_TABLE) continue;
      const rows = await loadTable(trx, engine, table, exported.get(table.name)!, exportDir, options);
      summary.tables.push({ name: table.name, rows });
    }
    await resetSequences(
      trx,
      engine,
      tables.filter((table) => table.name !== MIGRATIONS_TABLE),
      exported,
    );
  });
  return summary;
}

async function readDescriptor(exportDir: string): Promise<ExportDescriptor> {
  const invalid = (why: string) => new DatabaseCopyError('EXPORT_INVALID', `${join(exportDir, EXPORT_DESCRIPTOR)}: ${why}`);
  let value: unknown;
  try {
    value = JSON.parse(await readFile(join(exportDir, EXPORT_DESCRIPTOR), 'utf8'));
  } catch (error) {
    throw invalid((error as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'not valid JSON');
  }
  const descriptor = value as ExportDescriptor;
  if (typeof value !== 'object' || value === null || descriptor.format !== EXPORT_FORMAT) throw invalid(`not a ${EXPORT_FORMAT}`);
  const version: unknown = descriptor.version;
  if (version !== EXPORT_VERSION) throw invalid(`export format ${String(version)}; this keyward reads ${EXPORT_VERSION}`);
  if (!Array.isArray(descriptor.migrations) || !descriptor.migrations.every((name) => typeof name === 'string')) throw invalid('migrations is not a list of names');
  if (!Array.isArray(descriptor.tables)) throw invalid('tables is not a list');
  for (const table of descriptor.tables) {
    const ok =
      typeof table?.name === 'string' &&
      table.file === tableFile(table.name) &&
      Number.isSafeInteger(table.rows) &&
      table.rows >= 0 &&
      Array.isArray(table.columns) &&
      table.columns.every((column) => typeof column?.name === 'string' && LOGICAL_TYPES.has(column.type)) &&
      (table.serial === null || (typeof table.serial?.column === 'string' && Number.isSafeInteger(table.serial.next) && table.serial.next >= 1));
    if (!ok) throw invalid(`table entry ${JSON.stringify(String(table?.name))} is malformed`);
  }
  return descriptor;
}

/** Same tables, same columns with the same logical types, same migrations, and no rows yet. */
async function checkCompatible(trx: Knex.Transaction, tables: TableInfo[], descriptor: ExportDescriptor): Promise<void> {
  const mismatch = (why: string) => new DatabaseCopyError('SCHEMA_MISMATCH', `the export does not fit this database: ${why}`);
  const migrations = await appliedMigrations(trx);
  const have = [...migrations].sort().join(', ');
  const want = [...descriptor.migrations].sort().join(', ');
  if (have !== want) throw mismatch(`the export was taken at migrations [${want}], this database is at [${have}]; migrate it to the same version first`);
  const exported = new Map(descriptor.tables.map((table) => [table.name, table]));
  const local = new Set(tables.map((table) => table.name));
  for (const name of exported.keys()) if (!local.has(name)) throw mismatch(`table ${name} does not exist here`);
  for (const table of tables) {
    const source = exported.get(table.name);
    if (!source) throw mismatch(`table ${table.name} is not in the export`);
    const columns = new Map(source.columns.map((column) => [column.name, column.type]));
    if (columns.size !== table.columns.length) throw mismatch(`table ${table.name} has ${table.columns.length} columns here, ${columns.size} in the export`);
    for (const column of table.columns) {
      const type = columns.get(column.name);
      if (type === undefined) throw mismatch(`column ${table.name}.${column.name} is not in the export`);
      if (type !== column.type) throw mismatch(`column ${table.name}.${column.name} is ${column.type} here, ${type} in the export`);
    }
    if (table.name === MIGRATIONS_TABLE) continue;
    const [{ count }] = (await trx(table.name).count({ count: '*' })) as [{ count: number | string }];
    if (Number(count) > 0) throw new DatabaseCopyError('DATABASE_NOT_EMPTY', `table ${table.name} already holds ${count} rows; an export is only imported into an empty database`);
  }
}

async function loadTable(trx: Knex.Transaction, engine: DatabaseEngine, table: TableInfo, source: ExportDescriptor['tables'][number], exportDir: string, options: ImportOptions): Promise<number> {
  const file = join(exportDir, tableFile(table.name));
  const invalid = (why: string) => new DatabaseCopyError('EXPORT_INVALID', `${tableFile(table.name)}: ${why}`);
  const types = new Map(source.columns.map((column) => [column.name, column.type]));
  const batchSize = Math.max(1, Math.floor(MAX_BOUND_PARAMETERS / table.columns.length));
  let batch: Array<Record<string, unknown>> = [];
  let rows = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    try {
      await trx(table.name).insert(batch);
    } catch (error) {
      // The driver's message can quote the row (a duplicate key, a too-long value): its code only.
      throw new DatabaseCopyError('IMPORT_FAILED', `inserting rows ${rows - batch.length + 1}..${rows} into ${table.name} failed (${driverCode(error)})`);
    }
    batch = [];
    options.onProgress?.({ table: table.name, rows });
  };
  const stream = createReadStream(file, { encoding: 'utf8' });
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line += 1;
      if (text === '') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw invalid(`line ${line} is not valid JSON`);
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalid(`line ${line} is not an object`);
      const record = parsed as Record<string, unknown>;
      if (Object.keys(record).length !== types.size) throw invalid(`line ${line} has ${Object.keys(record).length} columns, not ${types.size}`);
      const row: Record<string, unknown> = {};
      for (const [name, type] of types) {
        if (!(name in record)) throw invalid(`line ${line} lacks column ${name}`);
        const value = decodeValue(type, record[name], engine);
        if (value === undefined) throw invalid(`line ${line}: column ${name} is not a valid ${type}`);
        row[name] = value;
      }
      batch.push(row);
      rows += 1;
      if (batch.length >= batchSize) await flush();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw invalid('missing');
    throw error;
  } finally {
    lines.close();
    stream.destroy();
  }
  await flush();
  if (rows !== source.rows) throw invalid(`${rows} rows, export.json says ${source.rows}`);
  return rows;
}

/**
 * Sets every sequence to hand out what the source's would have next (never below max + 1), so an id
 * deleted before the backup is not reused after the restore.
 */
async function resetSequences(trx: Knex.Transaction, engine: DatabaseEngine, tables: TableInfo[], exported: Map<string, ExportDescriptor['tables'][number]>): Promise<void> {
  for (const table of tables) {
    if (table.serial === null) continue;
    const source = exported.get(table.name)!.serial;
    const [{ max }] = (await trx(table.name).max({ max: table.serial })) as [{ max: number | string | null }];
    const next = Math.max(source && source.column === table.serial ? source.next : 1, max === null ? 1 : Number(max) + 1);
    try {
      if (engine === 'postgresql') {
        await trx.raw('SELECT setval(pg_get_serial_sequence(?, ?)::regclass, ?, false)', [`"${table.name}"`, table.serial, next]);
      } else if (next > 1) {
        const updated = await trx('sqlite_sequence')
          .where({ name: table.name })
          .update({ seq: next - 1 });
        if (updated === 0) await trx('sqlite_sequence').insert({ name: table.name, seq: next - 1 });
      }
    } catch (error) {
      throw new DatabaseCopyError('IMPORT_FAILED', `setting the id sequence of ${table.name} failed (${driverCode(error)})`);
    }
  }
}

/**
 * Migrates an empty database up to and including `schemaVersion`, no further, so an export taken at
 * an older schema can be imported; migrateToLatest then brings it forward. A name this keyward does
 * not know means the export is newer: SCHEMA_MISMATCH.
 */
export async function migrateToSchemaVersion(db: Knex, schemaVersion: string): Promise<string[]> {
  const all = await migrationSource.getMigrations([]);
  const index = all.indexOf(schemaVersion);
  if (index < 0) throw new DatabaseCopyError('SCHEMA_MISMATCH', `schema version ${schemaVersion} is unknown to this keyward (it knows ${all.join(', ')}): the export is newer`);
  const wanted = new Set(all.slice(0, index + 1));
  const limited: Knex.MigrationSource<string> = {
    getMigrations: async (loadExtensions) => (await migrationSource.getMigrations(loadExtensions)).filter((name) => wanted.has(name)),
    getMigrationName: (name) => migrationSource.getMigrationName(name),
    getMigration: (name) => migrationSource.getMigration(name),
  };
  const [, applied] = (await db.migrate.latest({ migrationSource: limited })) as [number, string[]];
  return applied;
}
