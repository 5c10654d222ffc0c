import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import knex, { type Knex } from 'knex';
import { type DatabaseConfig, openDatabase } from '../../db/database';
import type { ArchiveEntry } from './archive-entries';
import { copySqliteDatabase } from './database-copy';
import { DatabaseExport, type ExportDescriptor } from './database-export';
import { fileEntry } from './file-entry';

export interface DatabaseBackupOptions {
  /** A private directory for the SQLite copy (removed again once it is archived). */
  workDir: string;
  /** Entry name prefix; default "database/". */
  prefix?: string;
  /** SQLite only: also archive the copied database file itself (default true). */
  includeSqliteFile?: boolean;
  pageSize?: number;
}

/**
 * The database's archive entries, for either engine:
 *   SQLite: database/keyward.sqlite (the VACUUM INTO copy) and the logical export of that copy;
 *   PostgreSQL: the logical export, read in one REPEATABLE READ READ ONLY transaction.
 * `descriptor` (engine, schema version, row counts) is set once the entries are consumed, in time
 * for a manifestExtras function.
 */
export class DatabaseBackup implements AsyncIterable<ArchiveEntry> {
  descriptor: ExportDescriptor | null = null;

  constructor(
    private readonly config: DatabaseConfig,
    private readonly options: DatabaseBackupOptions,
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<ArchiveEntry> {
    const prefix = this.options.prefix ?? 'database/';
    if (this.config.client === 'pg') {
      const db = openDatabase(this.config);
      try {
        yield* this.export(db, prefix);
      } finally {
        await db.destroy();
      }
      return;
    }
    const copy = join(this.options.workDir, 'keyward.sqlite');
    await copySqliteDatabase(this.config.filename, copy);
    // A plain connection to the private copy: no WAL switch, nothing else writes to it.
    const db = knex({ client: 'sqlite3', connection: { filename: copy }, useNullAsDefault: true, pool: { min: 1, max: 1 } });
    try {
      if (this.options.includeSqliteFile ?? true) yield fileEntry(`${prefix}keyward.sqlite`, copy);
      yield* this.export(db, prefix);
    } finally {
      await db.destroy();
      await unlink(copy).catch(() => {});
    }
  }

  private async *export(db: Knex, prefix: string): AsyncGenerator<ArchiveEntry> {
    const exporter = new DatabaseExport(db, { prefix, ...(this.options.pageSize ? { pageSize: this.options.pageSize } : {}) });
    yield* exporter;
    this.descriptor = exporter.descriptor;
  }
}
