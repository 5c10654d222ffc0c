import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { syncDirectory, writeFileDurably } from '../db/durable-file';
import { join } from 'node:path';
import { DatabaseConfig, openDatabase, rawRows } from '../db/database';
import { Mark, replaceMarks } from '../db/high-water-mark';

/**
 * A restore swaps the store with several renames (database, its WAL, the TLS directory); no single
 * rename covers them all. Before the first one, the swap is written down here (fsynced); after the
 * last one, the note is removed. A process killed in between leaves the note, and the next process
 * to open the home (under the home lock) finishes the swap when the restored database is there to
 * put in place, or undoes it when it is not: the home ends with the old store or the restored one,
 * never with none.
 */
export interface RestoreJournal {
  version: 1;
  startedAt: string;
  archive: string;
  staging: string;
  quarantine: string;
  database: { client: 'sqlite'; filename: string; restored: string } | { client: 'pg'; restoredSchema: string };
  tlsDir: string;
  /** The restored TLS directory, written completely before the swap; null when the archive has none. */
  tlsReady: string | null;
  /** The restored store's lifecycle revisions: the home's high-water mark once the swap is done. */
  marks: Record<string, Mark>;
}

const SQLITE_SUFFIXES = ['', '-wal', '-shm'];

export function journalPath(home: string): string {
  return join(home, 'restore-in-progress.json');
}

export function writeJournal(home: string, journal: RestoreJournal): void {
  writeFileDurably(journalPath(home), `${JSON.stringify(journal, null, 2)}\n`);
}

export function readJournal(home: string): RestoreJournal | null {
  if (!existsSync(journalPath(home))) return null;
  return JSON.parse(readFileSync(journalPath(home), 'utf8')) as RestoreJournal;
}

/** The swap, step by step; each step can be run again after a crash and does nothing the second time. */
export async function swapSqliteFiles(journal: RestoreJournal, between: () => Promise<void> = async () => {}): Promise<void> {
  if (journal.database.client !== 'sqlite') return;
  const { filename, restored } = journal.database;
  mkdirSync(journal.quarantine, { recursive: true, mode: 0o700 });
  for (const suffix of SQLITE_SUFFIXES) {
    // A WAL left beside the restored file would be replayed into it: every one goes.
    if (existsSync(filename + suffix)) renameSync(filename + suffix, freeName(join(journal.quarantine, `keyward.sqlite${suffix}`)));
  }
  await between();
  renameSync(restored, filename);
  syncDirectory(journal.quarantine);
}

export async function swapTlsDirectory(journal: RestoreJournal, between: () => Promise<void> = async () => {}): Promise<void> {
  mkdirSync(journal.quarantine, { recursive: true, mode: 0o700 });
  if (journal.tlsReady && !existsSync(journal.tlsReady)) return; // moved in already
  if (existsSync(journal.tlsDir)) renameSync(journal.tlsDir, freeName(join(journal.quarantine, 'tls')));
  await between();
  if (journal.tlsReady) renameSync(journal.tlsReady, journal.tlsDir);
}

/** The last steps: the mark follows the restored store, the note and the staging directory go. */
export function completeJournal(home: string, journal: RestoreJournal): void {
  replaceMarks(home, journal.marks);
  const readme = join(journal.quarantine, 'README.txt');
  if (!existsSync(readme)) {
    writeFileSync(
      readme,
      `keyward moved the store it replaced here on ${new Date().toISOString()}, restoring ${journal.archive}.\n` +
        `database: ${existsSync(join(journal.quarantine, 'keyward.sqlite')) ? 'keyward.sqlite' : journal.database.client === 'pg' ? 'a PostgreSQL schema named keyward_quarantine_*' : '(none)'}\n` +
        `tls: ${existsSync(join(journal.quarantine, 'tls')) ? 'tls/' : '(none)'}\n` +
        'Delete it only after the restored store is confirmed good.\n',
      { mode: 0o600 },
    );
  }
  rmSync(journalPath(home), { force: true });
  syncDirectory(home);
  rmSync(journal.staging, { recursive: true, force: true });
}

export type JournalOutcome = { outcome: 'finished' | 'undone'; journal: RestoreJournal };

/**
 * Finishes or undoes a restore that was interrupted (the caller holds the home lock, so no restore is
 * running). Returns null when there was none.
 */
export async function recoverInterruptedRestore(home: string, database: DatabaseConfig): Promise<JournalOutcome | null> {
  const journal = readJournal(home);
  if (!journal) return null;
  const swapped = journal.database.client === 'sqlite' ? sqliteSwapState(journal) : await postgresSwapState(database, journal.database.restoredSchema);
  if (swapped === 'not-started') {
    // Nothing of the current store was moved: the restore never happened.
    await dropRestoredSchema(database, journal);
    rmSync(journalPath(home), { force: true });
    rmSync(journal.staging, { recursive: true, force: true });
    return { outcome: 'undone', journal };
  }
  if (swapped === 'restored-lost') {
    // The old store is in quarantine and the restored file is gone: put the old one back.
    const { filename } = journal.database as { filename: string };
    for (const suffix of SQLITE_SUFFIXES) {
      const moved = join(journal.quarantine, `keyward.sqlite${suffix}`);
      if (existsSync(moved)) renameSync(moved, filename + suffix);
    }
    rmSync(journalPath(home), { force: true });
    return { outcome: 'undone', journal };
  }
  if (swapped === 'half') await swapSqliteFiles(journal);
  await swapTlsDirectory(journal);
  completeJournal(home, journal);
  return { outcome: 'finished', journal };
}

function sqliteSwapState(journal: RestoreJournal): 'not-started' | 'half' | 'done' | 'restored-lost' {
  const { filename, restored } = journal.database as { filename: string; restored: string };
  const quarantined = existsSync(join(journal.quarantine, 'keyward.sqlite'));
  if (existsSync(restored)) return existsSync(filename) && !quarantined ? 'not-started' : 'half';
  if (existsSync(filename)) return 'done';
  if (quarantined) return 'restored-lost';
  throw new Error(`an interrupted restore left neither ${filename} nor its quarantined copy nor the restored file (quarantine ${journal.quarantine}); the restore note is kept`);
}

/** PostgreSQL swaps both schemas in one transaction: the restored schema is still there, or it took the name. */
async function postgresSwapState(database: DatabaseConfig, restoredSchema: string): Promise<'not-started' | 'done'> {
  const db = openDatabase(database);
  try {
    const rows = await rawRows(db, 'SELECT 1 FROM information_schema.schemata WHERE schema_name = ?', [restoredSchema]);
    return rows.length > 0 ? 'not-started' : 'done';
  } finally {
    await db.destroy();
  }
}

async function dropRestoredSchema(database: DatabaseConfig, journal: RestoreJournal): Promise<void> {
  if (journal.database.client !== 'pg') return;
  const db = openDatabase(database);
  try {
    await db.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [journal.database.restoredSchema]);
  } finally {
    await db.destroy();
  }
}

/** `path`, or `path.2`, `path.3`…: a second interrupted attempt never overwrites what the first moved aside. */
function freeName(path: string): string {
  if (!existsSync(path)) return path;
  for (let n = 2; ; n++) if (!existsSync(`${path}.${n}`)) return `${path}.${n}`;
}
