import type { Knex } from 'knex';
import type { DatabaseEngine } from './archive-manifest';
import { DatabaseCopyError } from './database-errors';
import { rawRows } from '../db/database';

/**
 * The schema read from the database itself, so a future migration needs no change here. Column types
 * are reduced to a few engine-neutral logical types; the export encodes values by them.
 */
export type LogicalType = 'integer' | 'boolean' | 'binary' | 'text' | 'timestamp' | 'json' | 'float' | 'decimal';

export interface ColumnInfo {
  name: string;
  type: LogicalType;
  /** The engine's own type name, for the record. */
  declaredType: string;
}

export interface TableInfo {
  name: string;
  columns: ColumnInfo[];
  primaryKey: string[];
  /** Tables this one references through a foreign key. */
  references: string[];
  /** The column a sequence (PostgreSQL serial, SQLite AUTOINCREMENT) fills, or null. */
  serial: string | null;
}

/** knex's lock row and the BOOT lease belong to the running processes, not to the data. */
export const EXCLUDED_TABLES = new Set(['knex_migrations_lock', 'boot_lease']);
export const MIGRATIONS_TABLE = 'knex_migrations';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function engineOf(db: Knex): DatabaseEngine {
  const client = String((db.client as { config: { client: unknown } }).config.client);
  if (client === 'sqlite3' || client === 'better-sqlite3' || client === 'sqlite') return 'sqlite';
  if (client === 'pg' || client === 'postgres' || client === 'postgresql') return 'postgresql';
  throw new RangeError(`unsupported knex client ${client}`);
}

/** Every table with its columns, parents before children (foreign keys), ties by name. */
export async function readSchema(db: Knex, engine: DatabaseEngine = engineOf(db)): Promise<TableInfo[]> {
  const tables = engine === 'sqlite' ? await readSqlite(db) : await readPostgres(db);
  for (const table of tables) {
    if (!IDENTIFIER.test(table.name)) throw new DatabaseCopyError('UNSUPPORTED_COLUMN_TYPE', `table name ${JSON.stringify(table.name)} is not a plain identifier`);
    for (const column of table.columns) {
      if (!IDENTIFIER.test(column.name)) throw new DatabaseCopyError('UNSUPPORTED_COLUMN_TYPE', `column name ${table.name}.${JSON.stringify(column.name)} is not a plain identifier`);
    }
  }
  return parentsFirst(tables);
}

/** Migration names in the order they were applied; empty before the first migration. */
export async function appliedMigrations(db: Knex): Promise<string[]> {
  if (!(await db.schema.hasTable(MIGRATIONS_TABLE))) return [];
  const rows = await db<{ id: number; name: string }>(MIGRATIONS_TABLE).select('name').orderBy('id');
  return rows.map((row) => row.name);
}

/** The next value the table's sequence hands out (never below max + 1), or null without one. */
export async function nextSerialValue(db: Knex, engine: DatabaseEngine, table: TableInfo): Promise<number | null> {
  if (table.serial === null) return null;
  const [{ max }] = (await db(table.name).max({ max: table.serial })) as [{ max: number | string | null }];
  const afterMax = max === null ? 1 : Number(max) + 1;
  let next: number;
  if (engine === 'postgresql') {
    const [row] = await rawRows<{ last: number | string | null }>(db, 'SELECT pg_sequence_last_value(pg_get_serial_sequence(?, ?)::regclass) AS last', [`"${table.name}"`, table.serial]);
    // Sequences are not transactional: this may run ahead of the snapshot, never behind it.
    next = row?.last === null || row?.last === undefined ? 1 : Number(row.last) + 1;
  } else {
    const [row] = await rawRows<{ seq: number }>(db, 'SELECT seq FROM sqlite_sequence WHERE name = ?', [table.name]);
    next = row === undefined ? 1 : Number(row.seq) + 1;
  }
  return Math.max(next, afterMax);
}

/** The schema version: the newest applied migration's name, or null. */
export async function schemaVersionOf(db: Knex): Promise<string | null> {
  const names = await appliedMigrations(db);
  return names.length === 0 ? null : [...names].sort().at(-1)!;
}

async function readSqlite(db: Knex): Promise<TableInfo[]> {
  const names: Array<{ name: string; sql: string }> = await db.raw("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name");
  const tables: TableInfo[] = [];
  for (const { name, sql } of names) {
    if (EXCLUDED_TABLES.has(name)) continue;
    const columns: Array<{ name: string; type: string; pk: number }> = await db.raw('SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid', [name]);
    const keys: Array<{ table: string }> = await db.raw('SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)', [name]);
    const primaryKey = columns.filter((column) => column.pk > 0).sort((a, b) => a.pk - b.pk);
    // AUTOINCREMENT is only allowed on an INTEGER PRIMARY KEY, and keeps its counter in sqlite_sequence.
    const serial = primaryKey.length === 1 && /\bautoincrement\b/i.test(sql) ? primaryKey[0]!.name : null;
    tables.push({
      name,
      columns: columns.map((column) => ({ name: column.name, declaredType: column.type, type: sqliteType(name, column.name, column.type) })),
      primaryKey: primaryKey.map((column) => column.name),
      references: keys.map((key) => key.table).filter((parent) => parent !== name),
      serial,
    });
  }
  return tables;
}

async function readPostgres(db: Knex): Promise<TableInfo[]> {
  const columns = await rawRows<{ table_name: string; column_name: string; data_type: string; sequence: string | null }>(
    db,
    `SELECT c.table_name, c.column_name, c.data_type,
              CASE WHEN c.data_type IN ('smallint', 'integer', 'bigint')
                   THEN pg_get_serial_sequence(quote_ident(c.table_name), c.column_name) END AS sequence
         FROM information_schema.columns c
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
        WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
        ORDER BY c.table_name, c.ordinal_position`,
  );
  const keys = await rawRows<{ table_name: string; column_name: string }>(
    db,
    `SELECT cl.relname AS table_name, a.attname AS column_name, array_position(i.indkey::int2[], a.attnum) AS position
         FROM pg_index i
         JOIN pg_class cl ON cl.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = cl.relnamespace
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        WHERE i.indisprimary AND n.nspname = current_schema()
        ORDER BY 1, 3`,
  );
  const references = await rawRows<{ child: string; parent: string }>(
    db,
    `SELECT child.relname AS child, parent.relname AS parent
         FROM pg_constraint c
         JOIN pg_class child ON child.oid = c.conrelid
         JOIN pg_class parent ON parent.oid = c.confrelid
         JOIN pg_namespace n ON n.oid = child.relnamespace
        WHERE c.contype = 'f' AND n.nspname = current_schema()`,
  );
  const tables = new Map<string, TableInfo>();
  for (const row of columns) {
    if (EXCLUDED_TABLES.has(row.table_name)) continue;
    let table = tables.get(row.table_name);
    if (!table) tables.set(row.table_name, (table = { name: row.table_name, columns: [], primaryKey: [], references: [], serial: null }));
    if (row.sequence && table.serial === null) table.serial = row.column_name;
    table.columns.push({ name: row.column_name, declaredType: row.data_type, type: postgresType(row.table_name, row.column_name, row.data_type) });
  }
  for (const key of keys) tables.get(key.table_name)?.primaryKey.push(key.column_name);
  for (const reference of references) {
    const table = tables.get(reference.child);
    if (table && reference.parent !== reference.child && !table.references.includes(reference.parent)) table.references.push(reference.parent);
  }
  return [...tables.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function unsupported(table: string, column: string, declared: string): DatabaseCopyError {
  return new DatabaseCopyError('UNSUPPORTED_COLUMN_TYPE', `column ${table}.${column} has type ${JSON.stringify(declared)}, which the export cannot carry losslessly`);
}

function postgresType(table: string, column: string, declared: string): LogicalType {
  switch (declared) {
    case 'smallint':
    case 'integer':
    case 'bigint':
      return 'integer';
    case 'boolean':
      return 'boolean';
    case 'bytea':
      return 'binary';
    case 'text':
    case 'character varying':
    case 'character':
    case 'uuid':
      return 'text';
    case 'timestamp with time zone':
    case 'timestamp without time zone':
      return 'timestamp';
    case 'json':
    case 'jsonb':
      return 'json';
    case 'real':
    case 'double precision':
      return 'float';
    case 'numeric':
      return 'decimal';
    default:
      throw unsupported(table, column, declared);
  }
}

/** SQLite keeps the declared type text verbatim; knex writes e.g. "varchar(255)", "boolean", "blob". */
function sqliteType(table: string, column: string, declared: string): LogicalType {
  const type = declared
    .toLowerCase()
    .replace(/\(.*\)$/, '')
    .trim();
  if (type === 'boolean' || type === 'bool') return 'boolean';
  if (type === 'datetime' || type === 'timestamp' || type === 'timestamptz') return 'timestamp';
  if (type === 'json' || type === 'jsonb') return 'json';
  if (type === 'blob' || type === 'binary' || type === 'varbinary' || type === 'bytea') return 'binary';
  if (type.includes('int')) return 'integer';
  if (type.includes('char') || type.includes('text') || type.includes('clob') || type === 'uuid') return 'text';
  if (type === 'real' || type === 'float' || type.startsWith('double')) return 'float';
  if (type === 'decimal' || type === 'numeric') return 'decimal';
  throw unsupported(table, column, declared);
}

/** Topological order so inserts never precede the rows they reference; a cycle keeps name order. */
function parentsFirst(tables: TableInfo[]): TableInfo[] {
  const byName = new Map(tables.map((table) => [table.name, table]));
  const sorted: TableInfo[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (table: TableInfo) => {
    if (state.get(table.name)) return;
    state.set(table.name, 'visiting');
    for (const parent of table.references) {
      const next = byName.get(parent);
      if (next && state.get(parent) !== 'visiting') visit(next);
    }
    state.set(table.name, 'done');
    sorted.push(table);
  };
  for (const table of [...tables].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) visit(table);
  return sorted;
}
