import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/*
 * A backup or restore writes full database copies into temporary names in the home (`.backup-*` work
 * directories, `.NAME.*.partial` archives and extractions, `.restore-*` staging). A process that is
 * killed leaves them behind. Each name carries the pid of the process that made it, so that the next
 * backup or start removes exactly those whose process is gone, never one that is still being written.
 */

/** `.NAME.<pid>-<random>.partial` beside `path`. */
export function partialPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}-${randomBytes(6).toString('hex')}.partial`);
}

/** The mkdtemp prefix of a backup's work directory in `home`. */
export function backupWorkPrefix(home: string): string {
  return join(home, `.backup-${process.pid}-`);
}

const PARTIAL = /^\..+\.(?:(\d+)-)?[0-9a-f]{12}\.partial$/;
const BACKUP_WORK = /^\.backup-(?:(\d+)-)?[A-Za-z0-9]{6}$/;
const RESTORE_STAGING = /^\.restore-\d{4}-\d{2}-\d{2}T[0-9-]+Z$/;

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes, from `home`, what dead backups and restores left. A name without a pid (an older keyward's)
 * counts as dead only under the home lock (`restoreStaging`), which no backup of that age took;
 * restore staging directories likewise: only a process holding the lock may judge them abandoned.
 */
export async function removeStaleTemporaries(home: string, options: { restoreStaging: boolean }): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(home);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const match = PARTIAL.exec(name) ?? BACKUP_WORK.exec(name);
    let stale: boolean;
    if (match) stale = match[1] === undefined ? options.restoreStaging : !alive(Number(match[1]));
    else stale = options.restoreStaging && RESTORE_STAGING.test(name);
    if (!stale) continue;
    await rm(join(home, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
