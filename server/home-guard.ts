import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { markPath } from '../db/high-water-mark';
import { KeywardError } from '../errors/keyward-error';
import { removeStaleTemporaries } from '../backup/stale-temporaries';
import { recoverInterruptedRestore } from '../effects/restore-journal';
import type { KeywardConfig } from './config';
import { HomeLock, lockHome } from './home-lock';

/** A missing or empty database beside what an install leaves behind: most likely a volume that did not mount. */
export class StoreMissingError extends KeywardError {
  constructor(message: string) {
    super('STORE_MISSING', message);
    this.name = 'StoreMissingError';
  }
}

export interface HomeGuardOptions {
  /** Keep the home's lock for the life of the process (a server), or for the command (a restore). */
  hold: 'server' | 'restore' | null;
  /** The command sends BOOT: an empty store beside an install's remains is refused. */
  boots: boolean;
  /** The operator's explicit `--fresh-start`: an empty store begins anew, the remains go to quarantine. */
  freshStart: boolean;
}

/**
 * What a command does with the home before it opens the store: an interrupted restore is finished or
 * undone (under the home lock), what a killed backup or restore left behind is removed, and a store
 * that vanished is refused instead of silently starting a new wizard. Returns the lock it holds and
 * what it did, for the operator.
 */
export async function guardHome(config: KeywardConfig, options: HomeGuardOptions): Promise<{ lock: HomeLock | null; notes: string[] }> {
  const notes: string[] = [];
  mkdirSync(config.home, { recursive: true });
  const lock: HomeLock | null = options.hold ? lockHome(config.home, options.hold) : null;
  try {
    if (existsSync(join(config.home, 'restore-in-progress.json'))) {
      // Only with the lock: a restore that is running right now holds it, and is left alone.
      const temporary = lock ? null : lockHome(config.home, 'restore recovery');
      try {
        const recovered = await recoverInterruptedRestore(config.home, config.database);
        if (recovered?.outcome === 'finished')
          notes.push(`an interrupted restore of ${recovered.journal.archive} was finished: the restored store is in place, the replaced one in ${recovered.journal.quarantine}`);
        if (recovered?.outcome === 'undone') notes.push(`an interrupted restore of ${recovered.journal.archive} was undone: the store is the one it would have replaced`);
      } finally {
        temporary?.release();
      }
    }
    if (lock) {
      const removed = await removeStaleTemporaries(config.home, { restoreStaging: true });
      if (removed.length > 0) notes.push(`removed what interrupted backups or restores left in the home: ${removed.join(', ')}`);
    }
    if (options.boots) notes.push(...refuseVanishedStore(config, options.freshStart));
    return { lock, notes };
  } catch (error) {
    lock?.release();
    throw error;
  }
}

/** What an install leaves in the home, in the words of the refusal. */
function remainsOfAnInstall(config: KeywardConfig): string[] {
  const found: string[] = [];
  const tokenDir = tokenDirectory(config.softhsmConf);
  if (tokenDir && nonEmpty(tokenDir)) found.push(`a token directory with tokens (${tokenDir})`);
  if (existsSync(join(config.secretsDir, 'hsm-user-pin'))) found.push(`the token PIN file (${join(config.secretsDir, 'hsm-user-pin')})`);
  if (nonEmpty(config.tlsDir)) found.push(`a TLS directory with a credential (${config.tlsDir})`);
  if (existsSync(markPath(config.home))) found.push(`the lifecycle high-water mark (${markPath(config.home)})`);
  return found;
}

function refuseVanishedStore(config: KeywardConfig, freshStart: boolean): string[] {
  if (config.database.client !== 'sqlite') return []; // PostgreSQL: the high-water mark catches an empty database at BOOT
  const file = config.database.filename;
  const empty = !existsSync(file) || statSync(file).size === 0;
  if (!empty) return [];
  const remains = remainsOfAnInstall(config);
  if (remains.length === 0) return [];
  if (!freshStart) {
    throw new StoreMissingError(
      `the database ${file} is ${existsSync(file) ? 'empty' : 'missing'}, but this home holds ${remains.join(', ')}: ` +
        'a volume that did not mount, or a database deleted by mistake? Start-up refused; nothing was changed. ' +
        'Mount or restore the database (`keyward restore`), or begin anew on purpose with `keyward start --fresh-start`.',
    );
  }
  // A deliberate fresh start: nothing is deleted; what would contradict the new store goes to quarantine.
  const quarantine = join(config.home, 'quarantine', `${new Date().toISOString().replace(/[:.]/g, '-')}-fresh-start`);
  mkdirSync(quarantine, { recursive: true, mode: 0o700 });
  const moved: string[] = [];
  for (const [path, name] of [
    [config.tlsDir, 'tls'],
    [markPath(config.home), 'lifecycle-mark.json'],
  ] as const) {
    if (!existsSync(path)) continue;
    renameSync(path, join(quarantine, name));
    moved.push(name);
  }
  if (existsSync(file) && statSync(file).size === 0) rmSync(file);
  return [`fresh start on purpose (--fresh-start): ${moved.length ? `${moved.join(' and ')} moved to ${quarantine}; ` : ''}the token and its PIN file are kept`];
}

function tokenDirectory(softhsmConf: string): string | null {
  try {
    return /^\s*directories\.tokendir\s*=\s*(.+?)\s*$/m.exec(readFileSync(softhsmConf, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

function nonEmpty(dir: string): boolean {
  try {
    return readdirSync(dir).length > 0;
  } catch {
    return false;
  }
}
