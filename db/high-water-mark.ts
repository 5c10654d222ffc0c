import { mkdirSync, readFileSync } from 'node:fs';
import { writeFileDurably } from './durable-file';
import { join } from 'node:path';
import { KeywardError } from '../errors/keyward-error';

/**
 * The furthest lifecycle revision (and its log hash) this home has seen committed, kept in a file
 * beside the database rather than in it: a store that goes back in time (a torn WAL, an older file
 * swapped in) takes its own revision back with it, but not this file. BOOT compares the two.
 * Every process that commits (the server, the CLI) raises the mark after its commit; a race between
 * two of them can only leave it lower than the truth, never higher, so it never refuses a good store.
 */
export interface Mark {
  revision: number;
  chainHead: string | null;
}

type MarkFile = { version: 1; deployments: Record<string, Mark & { at: string }> };

export function markPath(home: string): string {
  return join(home, 'lifecycle-mark.json');
}

export function readMarks(home: string): MarkFile | null {
  let text: string;
  try {
    text = readFileSync(markPath(home), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const parsed = JSON.parse(text) as MarkFile;
  if (parsed?.version !== 1 || typeof parsed.deployments !== 'object') throw new Error(`${markPath(home)} is not a keyward high-water mark`);
  return parsed;
}

export function readMark(home: string, deployment: string): Mark | null {
  return readMarks(home)?.deployments[deployment] ?? null;
}

/** After a commit: the mark only ever moves forward here. */
export function raiseMark(home: string, deployment: string, mark: Mark): void {
  const current = readMark(home, deployment);
  if (current && current.revision >= mark.revision) return;
  writeMark(home, deployment, mark);
}

/** Sets the mark to this store, lower or not: a restore, or an operator who accepts an older store. */
export function writeMark(home: string, deployment: string, mark: Mark | null): void {
  const file: MarkFile = readMarks(home) ?? { version: 1, deployments: {} };
  if (mark) file.deployments[deployment] = { revision: mark.revision, chainHead: mark.chainHead, at: new Date().toISOString() };
  else delete file.deployments[deployment];
  save(home, file);
}

/** A restore: the mark becomes the restored store's, deployment by deployment, and nothing else. */
export function replaceMarks(home: string, marks: Record<string, Mark>): void {
  const at = new Date().toISOString();
  save(home, { version: 1, deployments: Object.fromEntries(Object.entries(marks).map(([name, mark]) => [name, { ...mark, at }])) });
}

function save(home: string, file: MarkFile): void {
  mkdirSync(home, { recursive: true });
  // Written at every commit. A rename lost in a crash leaves the older, lower mark, which never refuses
  // a good store: the directory need not be flushed each time.
  writeFileDurably(markPath(home), `${JSON.stringify(file, null, 2)}\n`, { syncDirectory: false });
}

export class StoreBehindError extends KeywardError {
  constructor(message: string) {
    super('STORE_BEHIND', message);
    this.name = 'StoreBehindError';
  }
}

/**
 * Why this store is not the one the mark saw, or null when it is (or is ahead of it). `hashAt` reads
 * the log row's hash at the mark's revision, so that a different history of the same length or
 * longer is caught too.
 */
export async function storeBehindMark(mark: Mark | null, stored: Mark | null, hashAt: (revision: number) => Promise<string | null>): Promise<string | null> {
  if (!mark || mark.revision <= 0) return null;
  const revision = stored?.revision ?? 0;
  if (revision < mark.revision) {
    return `the database is at lifecycle revision ${revision}, but this home has seen revision ${mark.revision} committed: the store went back in time (a torn write-ahead log, an older file put in place, a volume that did not mount)`;
  }
  if (mark.chainHead) {
    const hash = await hashAt(mark.revision);
    if (hash !== null && hash !== mark.chainHead) return `the database's transition log at revision ${mark.revision} is not the one this home saw committed: another store was put in place`;
  }
  return null;
}

interface LifecycleReader {
  tablesExist(): Promise<boolean>;
  load(deployment: string): Promise<{ revision: number; chainHead: string | null } | null>;
  hashAt(deployment: string, revision: number): Promise<string | null>;
}

async function storedMark(lifecycle: LifecycleReader, deployment: string): Promise<Mark | null> {
  if (!(await lifecycle.tablesExist())) return null;
  const row = await lifecycle.load(deployment);
  return row ? { revision: row.revision, chainHead: row.chainHead } : null;
}

/** At BOOT: a store behind the home's mark is refused before anything is written into it. */
export async function refuseStoreBehindMark(home: string, deployment: string, lifecycle: LifecycleReader): Promise<void> {
  const problem = await storeBehindMark(readMark(home, deployment), await storedMark(lifecycle, deployment), (revision) => lifecycle.hashAt(deployment, revision));
  if (problem) {
    throw new StoreBehindError(
      `${problem}. Start-up refused; nothing was changed. Put the newer store back, or restore a backup with \`keyward restore\`; ` +
        `if this older store is what you want, accept it with \`keyward start --accept-older-store\` (${markPath(home)} then follows it).`,
    );
  }
}

/** The operator's explicit acceptance of the store as it is now: the mark is set to it. */
export async function acceptStore(home: string, deployment: string, lifecycle: LifecycleReader): Promise<{ from: Mark | null; to: Mark | null }> {
  const from = readMark(home, deployment);
  const to = await storedMark(lifecycle, deployment);
  writeMark(home, deployment, to);
  return { from, to };
}

/** The repository's commit listener that keeps the home's mark up to date. */
export function markFollower(home: string): (deployment: string, revision: number, chainHead: string) => void {
  let warned = false;
  return (deployment, revision, chainHead) => {
    try {
      raiseMark(home, deployment, { revision, chainHead });
    } catch (error) {
      // The commit stands; a mark left behind only weakens the next BOOT's check, it never refuses.
      if (!warned) process.stderr.write(`keyward: the high-water mark ${markPath(home)} could not be updated: ${(error as Error).message}\n`);
      warned = true;
    }
  };
}
