import { existsSync, statSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Knex } from 'knex';
import type { KdfParams } from '../crypto/backup-copy';
import { DatabaseConfig, latestSchemaVersion, migrateToLatest, openDatabase, rawRows } from '../db/database';
import { ArchiveManifest, compareArchiveVersions, exportSqliteFile, extractArchive, importDatabase, migrateToSchemaVersion } from '../backup';
import { importPemFiles, writeTlsFiles } from '../tls';
import { completeJournal, journalPath, RestoreJournal, swapSqliteFiles, swapTlsDirectory, writeJournal } from './restore-journal';
import type { Mark } from '../db/high-water-mark';
import { KeywardError } from '../errors/keyward-error';

export class RestoreError extends KeywardError {
  declare readonly code: 'ARCHIVE_TOO_NEW' | 'RESTORE_FAILED';

  constructor(code: 'ARCHIVE_TOO_NEW' | 'RESTORE_FAILED', message: string) {
    super(code, message);
    this.name = 'RestoreError';
  }
}

export interface RestoreTarget {
  home: string;
  tlsDir: string;
  database: DatabaseConfig;
  appVersion: string;
  /** The running process's own connection to the database, closed around the swap and reopened. */
  liveDb?: Knex;
}

export interface RestoreReport {
  manifest: ArchiveManifest;
  quarantine: string;
  /** Where the replaced database went: a file, or a PostgreSQL schema. */
  quarantinedDatabase: string | null;
  restoredFrom: 'sqlite-file' | 'logical-export';
}

/**
 * Restores an archive over the current store (docs/backup-format.md). Everything is checked before
 * anything is touched: the archive is decrypted and verified, a newer keyward's archive is refused,
 * and the restored database is built and migrated beside the current one. Only then is the current
 * store moved aside — never deleted — into a dated quarantine, and the restored one put in its place.
 * BOOT decides what follows (a new host or a lost KEK goes through auto-restore).
 */
export async function restoreArchive(
  target: RestoreTarget,
  archive: string,
  passphrase: string,
  options: { onProgress?: (message: string) => void; onCheckpoint?: (name: string) => Promise<void>; kdfCeiling?: KdfParams } = {},
): Promise<RestoreReport> {
  const say = options.onProgress ?? (() => {});
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const staging = join(target.home, `.restore-${stamp}`);
  const quarantine = join(target.home, 'quarantine', stamp);
  const checkpoint = options.onCheckpoint ?? (async () => {});
  let swapping = false;
  try {
    // One pass, one Argon2id run: extraction verifies every segment and the manifest as it writes,
    // and nothing outside the staging directory is touched before it has.
    say('verifying and extracting the archive');
    const { manifest } = await extractArchive(archive, passphrase, staging, { kdfCeiling: options.kdfCeiling });
    const latest = await latestSchemaVersion();
    const order = compareArchiveVersions(manifest, { keywardVersion: target.appVersion, schemaVersion: latest });
    if (order.overall === 'newer') {
      throw new RestoreError(
        'ARCHIVE_TOO_NEW',
        `the archive was made by keyward ${manifest.keywardVersion} (schema ${manifest.schemaVersion}), newer than this keyward ${target.appVersion} (schema ${latest}): restore it with that version or a newer one; nothing was changed`,
      );
    }
    const fromFile = target.database.client === 'sqlite' && existsSync(join(staging, 'database', 'keyward.sqlite'));
    say(fromFile ? 'preparing the restored database file' : 'importing the database');
    const prepared = target.database.client === 'sqlite' ? await prepareSqlite(staging, manifest, fromFile) : await preparePostgres(target.database, staging, manifest, stamp);

    const tls = await archivedTls(staging);
    const tlsReady = tls ? join(staging, 'tls-ready') : null;
    if (tls) await writeTlsFiles(tlsReady!, tls);

    await checkpoint('restore:prepared');
    // From here on the swap is journalled: a crash is finished or undone by the next start.
    const journal: RestoreJournal = {
      version: 1,
      startedAt: new Date().toISOString(),
      archive,
      staging,
      quarantine,
      database: target.database.client === 'sqlite' ? { client: 'sqlite', filename: target.database.filename, restored: prepared.location } : { client: 'pg', restoredSchema: prepared.location },
      tlsDir: target.tlsDir,
      tlsReady,
      marks: prepared.marks,
    };
    writeJournal(target.home, journal);
    swapping = true;
    await checkpoint('restore:journalled');
    say('moving the current store to quarantine');
    await mkdir(quarantine, { recursive: true, mode: 0o700 });
    const quarantinedDatabase = target.database.client === 'sqlite' ? await swapSqlite(journal, target.liveDb, checkpoint) : await swapPostgres(target.database, prepared.location, stamp);
    await checkpoint('restore:database-swapped');
    await swapTlsDirectory(journal, () => checkpoint('restore:tls-quarantined'));
    await checkpoint('restore:tls-swapped');
    completeJournal(target.home, journal);
    swapping = false;
    return { manifest, quarantine, quarantinedDatabase, restoredFrom: fromFile ? 'sqlite-file' : 'logical-export' };
  } catch (error) {
    if (!swapping) throw error;
    throw new RestoreError(
      'RESTORE_FAILED',
      `the swap of the store stopped half-way (${(error as Error).message}); the next keyward command on ${target.home} finishes or undoes it from ${journalPath(target.home)}`,
    );
  } finally {
    // A swap that failed half-way keeps its staging directory: the next start finishes it from there.
    if (!swapping) await rm(staging, { recursive: true, force: true });
  }
}

/** The archive's TLS material, checked (key matches certificate) before anything is swapped. */
async function archivedTls(staging: string) {
  const dir = join(staging, 'tls');
  if (!existsSync(join(dir, 'server.key'))) return null;
  const chain = join(dir, 'chain.crt');
  return importPemFiles({ keyFile: join(dir, 'server.key'), certificateFile: join(dir, 'server.crt'), chainFile: existsSync(chain) && statSync(chain).size > 0 ? chain : null });
}

/** The archive's database as an SQLite file, migrated to this keyward's schema. */
async function prepareSqlite(staging: string, manifest: ArchiveManifest, fromFile: boolean): Promise<Prepared> {
  const file = join(staging, 'restored.sqlite');
  // The extracted copy is moved, not copied: the staging directory is private and removed afterwards.
  if (fromFile) await rename(join(staging, 'database', 'keyward.sqlite'), file);
  const db = openDatabase({ client: 'sqlite', filename: file });
  let marks: Record<string, Mark>;
  try {
    if (!fromFile) await importInto(db, staging, manifest);
    await migrateToLatest(db);
    marks = await lifecycleMarks(db);
    // One file, no WAL beside it, before it is moved into place.
    await db.raw('PRAGMA wal_checkpoint(TRUNCATE)');
    await db.raw('PRAGMA journal_mode = DELETE');
  } finally {
    await db.destroy();
  }
  return { location: file, marks };
}

interface Prepared {
  /** The restored SQLite file, or the PostgreSQL schema that holds the restored store. */
  location: string;
  marks: Record<string, Mark>;
}

/** Each deployment's lifecycle revision and log head in the restored store. */
async function lifecycleMarks(db: Knex): Promise<Record<string, Mark>> {
  if (!(await db.schema.hasTable('lifecycle'))) return {};
  const rows = await db<{ deployment: string; revision: number | string; chain_head: string | null }>('lifecycle').select('deployment', 'revision', 'chain_head');
  return Object.fromEntries(rows.map((row) => [row.deployment, { revision: Number(row.revision), chainHead: row.chain_head ?? null }]));
}

/** The archive's database imported into a new schema of the same PostgreSQL database. */
async function preparePostgres(config: DatabaseConfig, staging: string, manifest: ArchiveManifest, stamp: string): Promise<Prepared> {
  const schema = `keyward_restore_${stamp.replace(/[^0-9A-Za-z]/g, '_').toLowerCase()}`;
  const admin = openDatabase(config);
  try {
    await admin.raw('CREATE SCHEMA ??', [schema]);
  } finally {
    await admin.destroy();
  }
  const db = openDatabase(config, { searchPath: schema });
  let marks: Record<string, Mark>;
  try {
    await importInto(db, staging, manifest);
    await migrateToLatest(db);
    marks = await lifecycleMarks(db);
  } catch (error) {
    const cleanup = openDatabase(config);
    try {
      await cleanup.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [schema]);
    } finally {
      await cleanup.destroy();
    }
    throw error;
  } finally {
    await db.destroy();
  }
  return { location: schema, marks };
}

async function importInto(db: Knex, staging: string, manifest: ArchiveManifest): Promise<void> {
  if (!manifest.schemaVersion) throw new RestoreError('RESTORE_FAILED', 'the archive does not name its schema version');
  let exported = join(staging, 'database');
  if (!existsSync(join(exported, 'export.json'))) {
    // An SQLite archive holds the file alone (manifest version 2): its export is made here, to disk.
    if (!existsSync(join(exported, 'keyward.sqlite'))) throw new RestoreError('RESTORE_FAILED', 'the archive holds neither a database export nor an SQLite database');
    exported = join(staging, 'database-export');
    await exportSqliteFile(join(staging, 'database', 'keyward.sqlite'), exported);
  }
  await migrateToSchemaVersion(db, manifest.schemaVersion);
  await importDatabase(db, exported);
}

async function swapSqlite(journal: RestoreJournal, liveDb: Knex | undefined, checkpoint: (name: string) => Promise<void>): Promise<string | null> {
  await liveDb?.destroy();
  try {
    const { filename } = journal.database as { filename: string };
    const had = existsSync(filename);
    // Between the renames: the current store in quarantine, the restored one not yet in place.
    await swapSqliteFiles(journal, () => checkpoint('restore:database-quarantined'));
    return had ? join(journal.quarantine, 'keyward.sqlite') : null;
  } finally {
    liveDb?.initialize();
  }
}

/** One transaction: the current schema is renamed into quarantine, the restored one takes its name. */
async function swapPostgres(config: DatabaseConfig, restoredSchema: string, stamp: string): Promise<string> {
  const quarantineSchema = `keyward_quarantine_${stamp.replace(/[^0-9A-Za-z]/g, '_').toLowerCase()}`;
  const db = openDatabase(config);
  try {
    const [{ current_schema: current }] = (await rawRows<{ current_schema: string }>(db, 'SELECT current_schema()')) as [{ current_schema: string }];
    await db.transaction(async (trx) => {
      await trx.raw('ALTER SCHEMA ?? RENAME TO ??', [current, quarantineSchema]);
      await trx.raw('ALTER SCHEMA ?? RENAME TO ??', [restoredSchema, current]);
    });
    return `postgresql schema ${quarantineSchema}`;
  } finally {
    await db.destroy();
  }
}
