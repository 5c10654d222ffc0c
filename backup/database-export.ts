import type { Knex } from 'knex';
import type { ArchiveEntry } from './archive-entries';
import type { DatabaseEngine } from './archive-manifest';
import { DatabaseCopyError } from './database-errors';
import { type ColumnInfo, type LogicalType, type TableInfo, appliedMigrations, engineOf, nextSerialValue, readSchema } from './database-schema';
import { encodeValue } from './database-values';

export const EXPORT_FORMAT = 'keyward-database-export';
export const EXPORT_VERSION = 1;
export const EXPORT_DESCRIPTOR = 'export.json';

/** export.json: written after the tables, so it can carry their row counts. */
export interface ExportDescriptor {
  format: typeof EXPORT_FORMAT;
  version: typeof EXPORT_VERSION;
  engine: DatabaseEngine;
  schemaVersion: string | null;
  /** Applied migrations in the order they were applied. */
  migrations: string[];
  exportedAt: string;
  /** Parents before children. */
  tables: Array<{
    name: string;
    file: string;
    rows: number;
    primaryKey: string[];
    references: string[];
    columns: Array<{ name: string; type: LogicalType; declaredType: string }>;
    /** The sequence-fed column and the next value it would hand out: ids are never reused after a restore. */
    serial: { column: string; next: number } | null;
  }>;
}

export interface ExportOptions {
  /** Prefix of every entry name, e.g. "database/". */
  prefix?: string;
  /** Rows per query (keyset pagination by primary key). */
  pageSize?: number;
}

/**
 * A logical export of every table as archive entries: tables/<name>.jsonl, one JSON object per row,
 * then export.json. Everything is read inside one transaction, REPEATABLE READ READ ONLY on
 * PostgreSQL (one snapshot for all tables while the server keeps writing), a read transaction on
 * SQLite (a WAL snapshot; use it on a copy from copySqliteDatabase, not on the server's single
 * connection). Rows are streamed page by page; the transaction ends when iteration ends.
 */
export class DatabaseExport implements AsyncIterable<ArchiveEntry> {
  /** Set once every entry has been consumed. */
  descriptor: ExportDescriptor | null = null;
  private readonly prefix: string;
  private readonly pageSize: number;

  constructor(
    private readonly db: Knex,
    options: ExportOptions = {},
  ) {
    this.prefix = options.prefix ?? '';
    this.pageSize = options.pageSize ?? 1000;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ArchiveEntry> {
    const engine = engineOf(this.db);
    const trx = await this.db.transaction();
    try {
      if (engine === 'postgresql') await trx.raw('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const tables = await readSchema(trx, engine);
      const migrations = await appliedMigrations(trx);
      const exportedAt = new Date().toISOString();
      const counts = new Map<string, number>();
      const serials = new Map<string, number | null>();
      for (const table of tables) serials.set(table.name, await nextSerialValue(trx, engine, table));
      for (const table of tables) {
        yield { name: `${this.prefix}${tableFile(table.name)}`, data: this.rows(trx, table, counts) };
      }
      const descriptor: ExportDescriptor = {
        format: EXPORT_FORMAT,
        version: EXPORT_VERSION,
        engine,
        schemaVersion: migrations.length === 0 ? null : [...migrations].sort().at(-1)!,
        migrations,
        exportedAt,
        tables: tables.map((table) => ({
          name: table.name,
          file: tableFile(table.name),
          rows: counts.get(table.name) ?? 0,
          primaryKey: table.primaryKey,
          references: table.references,
          columns: table.columns.map(({ name, type, declaredType }) => ({ name, type, declaredType })),
          serial: table.serial === null ? null : { column: table.serial, next: serials.get(table.name)! },
        })),
      };
      yield { name: `${this.prefix}${EXPORT_DESCRIPTOR}`, data: Buffer.from(`${JSON.stringify(descriptor, null, 2)}\n`, 'utf8') };
      await trx.commit();
      this.descriptor = descriptor;
    } finally {
      if (!trx.isCompleted()) await trx.rollback().catch(() => {});
    }
  }

  private async *rows(trx: Knex.Transaction, table: TableInfo, counts: Map<string, number>): AsyncGenerator<Buffer> {
    const names = table.columns.map((column) => column.name);
    const key = table.primaryKey;
    let last: unknown[] | null = null;
    let offset = 0;
    let count = 0;
    counts.set(table.name, 0);
    for (;;) {
      const query = trx(table.name).select(names).limit(this.pageSize);
      if (key.length > 0) {
        query.orderBy(key.map((column) => ({ column, order: 'asc' as const })));
        if (last) {
          // Keyset pagination: each page is an index range scan, however deep into the table.
          if (key.length === 1) query.where(key[0]!, '>', last[0] as Knex.Value);
          else query.whereRaw(`(${key.map(() => '??').join(', ')}) > (${key.map(() => '?').join(', ')})`, [...key, ...(last as Knex.Value[])]);
        }
      } else {
        query.orderBy(names.map((column) => ({ column, order: 'asc' as const }))).offset(offset);
      }
      const page = (await query) as Array<Record<string, unknown>>;
      if (page.length === 0) break;
      yield Buffer.from(page.map((row) => `${JSON.stringify(encodeRow(table, row))}\n`).join(''), 'utf8');
      count += page.length;
      counts.set(table.name, count);
      if (page.length < this.pageSize) break;
      const final = page[page.length - 1]!;
      last = key.map((column) => final[column]);
      offset += page.length;
    }
  }
}

export function tableFile(table: string): string {
  return `tables/${table}.jsonl`;
}

function encodeRow(table: TableInfo, row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const column of table.columns) out[column.name] = encodeColumn(table, column, row[column.name]);
  return out;
}

function encodeColumn(table: TableInfo, column: ColumnInfo, value: unknown): unknown {
  const encoded = encodeValue(column, value);
  if (encoded === undefined) {
    // The value's JavaScript type only: the value itself may be a secret.
    const kind = Buffer.isBuffer(value) ? 'bytes' : value instanceof Date ? 'date' : typeof value;
    throw new DatabaseCopyError('UNSUPPORTED_COLUMN_TYPE', `a value in ${table.name}.${column.name} (${kind}) does not fit its type ${column.type} (${column.declaredType})`);
  }
  return encoded;
}
