import { open, unlink } from 'node:fs/promises';
import sqlite3 from 'sqlite3';
import { BackupArchiveError } from './archive-errors';
import { DatabaseCopyError } from './database-errors';

/**
 * An online, consistent copy of a live SQLite database: VACUUM INTO on a separate read-only
 * connection. It runs inside one read transaction, so it sees a single snapshot (WAL included)
 * while the server keeps writing; a raw copy of the file would miss the WAL or tear mid-write.
 * The copy is created empty with mode 0600 first (VACUUM INTO accepts an empty target) so it
 * never exists with wider permissions, then checked with PRAGMA integrity_check.
 */
export async function copySqliteDatabase(sourceFile: string, destFile: string): Promise<void> {
  try {
    await (await open(destFile, 'wx', 0o600)).close();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new BackupArchiveError('OUTPUT_EXISTS', `${destFile} already exists; the database copy is never written over a file`);
    throw error;
  }
  try {
    const source = await connect(sourceFile, sqlite3.OPEN_READONLY);
    try {
      source.configure('busyTimeout', 10000);
      await run(source, 'VACUUM INTO ?', [destFile]);
    } finally {
      await close(source);
    }
    const copy = await connect(destFile, sqlite3.OPEN_READONLY);
    try {
      const rows = await all(copy, 'PRAGMA integrity_check');
      if (rows.length !== 1 || rows[0]!.integrity_check !== 'ok') throw new DatabaseCopyError('SQLITE_COPY_FAILED', `the copy of ${sourceFile} fails PRAGMA integrity_check`);
    } finally {
      await close(copy);
    }
    const handle = await open(destFile, 'r+');
    await handle.sync().finally(() => handle.close());
  } catch (error) {
    await unlink(destFile).catch(() => {});
    if (error instanceof DatabaseCopyError) throw error;
    const code = (error as { code?: unknown }).code;
    throw new DatabaseCopyError('SQLITE_COPY_FAILED', `copying the SQLite database ${sourceFile} failed (${typeof code === 'string' ? code : 'unknown'})`);
  }
}

function connect(file: string, mode: number): Promise<sqlite3.Database> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(file, mode, (error) => (error ? reject(error) : resolve(db)));
  });
}

function run(db: sqlite3.Database, sql: string, params: unknown[]): Promise<void> {
  return new Promise((resolve, reject) => db.run(sql, params, (error) => (error ? reject(error) : resolve())));
}

function all(db: sqlite3.Database, sql: string): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => db.all(sql, (error, rows) => (error ? reject(error) : resolve(rows as Array<Record<string, unknown>>))));
}

function close(db: sqlite3.Database): Promise<void> {
  return new Promise((resolve) => db.close(() => resolve()));
}
