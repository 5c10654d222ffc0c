import { mkdir, open, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import knex, { type Knex } from 'knex';
import { type DatabaseConfig, openDatabase } from '../db/database';
import type { ArchiveEntry, EntryData } from './archive-entries';
import type { DatabaseEngine, DatabaseForm } from './archive-manifest';
import { copySqliteDatabase } from './database-copy';
import { DatabaseExport, type ExportDescriptor } from './database-export';
import { schemaVersionOf } from './database-schema';
import { fileEntry } from './file-entry';

export interface DatabaseBackupOptions {
  /** A private directory for the SQLite copy (removed again once it is archived). */
  workDir: string;
  /** Entry name prefix; default "database/". */
  prefix?: string;
  /**
   * SQLite only: also archive the logical export of the copy (default false). The file alone
   * restores onto either engine: onto PostgreSQL the restore exports it then (exportSqliteFile).
   */
  includeExport?: boolean;
  pageSize?: number;
}

/**
 * The database's archive entries, for either engine:
 *   SQLite: database/keyward.sqlite (the VACUUM INTO copy), and its logical export only if asked;
 *   PostgreSQL: the logical export, read in one REPEATABLE READ READ ONLY transaction.
 * `engine`, `schemaVersion` and `form` (and `descriptor` when there is an export) are set once the
 * entries are consumed, in time for a manifestExtras function.
 */
export class DatabaseBackup implements AsyncIterable<ArchiveEntry> {
  descriptor: ExportDescriptor | null = null;
  readonly engine: DatabaseEngine;
  schemaVersion: string | null = null;
  readonly form: DatabaseForm;

  constructor(
    private readonly config: DatabaseConfig,
    private readonly options: DatabaseBackupOptions,
  ) {
    this.engine = config.client === 'pg' ? 'postgresql' : 'sqlite';
    this.form = config.client === 'sqlite' ? 'sqlite-file' : 'export';
  }

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
    const db = openCopy(copy);
    try {
      this.schemaVersion = await schemaVersionOf(db);
      yield fileEntry(`${prefix}keyward.sqlite`, copy);
      if (this.options.includeExport) yield* this.export(db, prefix);
    } finally {
      await db.destroy();
      await unlink(copy).catch(() => {});
    }
  }

  private async *export(db: Knex, prefix: string): AsyncGenerator<ArchiveEntry> {
    const exporter = new DatabaseExport(db, { prefix, ...(this.options.pageSize ? { pageSize: this.options.pageSize } : {}) });
    yield* exporter;
    this.descriptor = exporter.descriptor;
    this.schemaVersion = exporter.descriptor?.schemaVersion ?? null;
  }
}

/**
 * The logical export of an SQLite file (an archive's database/keyward.sqlite) written into `dir`
 * as importDatabase reads it: how an archive that holds the file alone goes onto PostgreSQL. Rows
 * are streamed page by page to disk, so memory stays flat in the number of rows.
 */
export async function exportSqliteFile(file: string, dir: string): Promise<ExportDescriptor> {
  const db = openCopy(file);
  try {
    const exporter = new DatabaseExport(db);
    for await (const entry of exporter) await writeEntryFile(join(dir, ...entry.name.split('/')), entry.data);
    return exporter.descriptor!;
  } finally {
    await db.destroy();
  }
}

/** A plain connection to a private copy: no WAL switch, nothing else writes to it. */
function openCopy(file: string): Knex {
  return knex({ client: 'sqlite3', connection: { filename: file }, useNullAsDefault: true, pool: { min: 1, max: 1 } });
}

async function writeEntryFile(path: string, data: EntryData): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const handle = await open(path, 'wx', 0o600);
  try {
    if (data instanceof Uint8Array) await handle.writeFile(data);
    else for await (const chunk of data) await handle.writeFile(chunk);
  } finally {
    await handle.close();
  }
}
