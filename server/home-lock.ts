import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { KeywardError } from '../errors/keyward-error';

/**
 * One process at a time owns a home for the things that must not run side by side: a server, a
 * restore, the recovery of an interrupted restore. The lock is an flock(2) on `keyward.lock`, taken
 * by util-linux `flock` on a descriptor this process keeps open: the lock belongs to the open file
 * description, so it stays when the helper exits and the kernel drops it when this process dies,
 * SIGKILL included — no stale lock is ever left behind, unlike a pid file.
 */
export class HomeInUseError extends KeywardError {
  constructor(
    readonly home: string,
    readonly holder: string,
  ) {
    super('HOME_IN_USE', `another keyward process holds ${home}${holder ? ` (${holder})` : ''}: stop it first; nothing was changed`);
    this.name = 'HomeInUseError';
  }
}

export interface HomeLock {
  release(): void;
}

export function homeLockPath(home: string): string {
  return join(home, 'keyward.lock');
}

/** Takes the home's lock for `purpose` (e.g. "server", "restore") or throws HomeInUseError; never waits. */
export function lockHome(home: string, purpose: string): HomeLock {
  const path = homeLockPath(home);
  // O_CLOEXEC is Node's default: children (token scripts) never inherit the lock.
  const fd = openSync(path, 'a+', 0o600);
  const result = spawnSync('flock', ['--nonblock', '--exclusive', '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
  if (result.error) {
    closeSync(fd);
    throw new Error(`cannot lock ${path}: util-linux flock is needed (${result.error.message})`);
  }
  if (result.status !== 0) {
    closeSync(fd);
    throw new HomeInUseError(home, lockHolder(home));
  }
  // Who holds it, for the next process's message; the lock itself is the flock, not this text.
  ftruncateSync(fd, 0);
  writeSync(fd, `pid ${process.pid}, ${purpose}, since ${new Date().toISOString()}\n`, 0);
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      ftruncateSync(fd, 0);
      closeSync(fd);
    },
  };
}

function lockHolder(home: string): string {
  try {
    return readFileSync(homeLockPath(home), 'utf8').trim();
  } catch {
    return '';
  }
}
