import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * `keyward start` leaves its pid in the home, so that commands which must not run under a live
 * server (a restore moves the database file) can tell one is running.
 */
export function pidFilePath(home: string): string {
  return join(home, 'keyward.pid');
}

export function writePidFile(home: string): void {
  writeFileSync(pidFilePath(home), `${process.pid}\n`, { mode: 0o600 });
}

export function removePidFile(home: string): void {
  try {
    if (readFileSync(pidFilePath(home), 'utf8').trim() === String(process.pid)) rmSync(pidFilePath(home));
  } catch {
    // gone already
  }
}

/** The pid of a live server on this home, or null (no file, or a stale one). */
export function runningServer(home: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFilePath(home), 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}
