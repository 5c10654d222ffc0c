import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { childEnvironment } from '../effects/child-env';

export const OPENSSL_COMMAND = 'openssl';
export const OPENSSL_TIMEOUT_MS = 30_000;
/** Where openssl reads the secret: `-passin fd:3`. */
export const SECRET_FD = 3;
const MAX_STDERR = 64 * 1024;

export interface OpensslSpawn {
  command: string;
  args: readonly string[];
  pid: number;
}

export type OpensslSpawnObserver = (spawned: OpensslSpawn) => void;

const observers = new Set<OpensslSpawnObserver>();

/**
 * Calls `observer` each time keyward starts openssl: after the process has been exec'd and before it
 * has been given any input, so it is alive and blocked on its pipes. An audit (or a test) can then
 * read /proc/PID/cmdline and /proc/PID/environ and see that no password is in either. Returns the
 * function that removes the observer. An observer that throws does not stop the run.
 */
export function observeOpensslSpawns(observer: OpensslSpawnObserver): () => void {
  observers.add(observer);
  return () => observers.delete(observer);
}

export interface OpensslResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs openssl with `input` on stdin and `secret` on file descriptor 3 (for `-passin fd:3`). A secret
 * never goes into the arguments or the environment: other users of the host read both through ps
 * and /proc. Rejects only when openssl cannot be run; a non-zero exit is the caller's to interpret.
 */
export function runOpenssl(args: readonly string[], io: { input?: Buffer; secret?: string } = {}): Promise<OpensslResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(OPENSSL_COMMAND, args, { env: childEnvironment(), stdio: ['pipe', 'pipe', 'pipe', io.secret === undefined ? 'ignore' : 'pipe'] });
    // Streams asked for as 'pipe' always exist.
    const [stdin, stdoutStream, stderrStream] = [child.stdin!, child.stdout!, child.stderr!];
    const stdout: Buffer[] = [];
    let stderr = '';
    let failure: Error | null = null;
    const timer = setTimeout(() => {
      failure = new Error(`openssl did not finish within ${OPENSSL_TIMEOUT_MS / 1000} s`);
      child.kill('SIGKILL');
    }, OPENSSL_TIMEOUT_MS);
    child.on('error', (error: NodeJS.ErrnoException) => {
      failure ??= error.code === 'ENOENT' ? new Error('the openssl command is not installed or not on PATH', { cause: error }) : error;
    });
    stdoutStream.on('data', (chunk: Buffer) => stdout.push(chunk));
    stderrStream.on('data', (chunk: Buffer) => {
      if (stderr.length < MAX_STDERR) stderr += chunk.toString('utf8');
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (failure) reject(failure);
      else resolve({ code, stdout: Buffer.concat(stdout), stderr });
    });
    if (child.pid === undefined) return; // spawn failed; 'error' and 'close' follow
    for (const observer of observers) {
      try {
        observer({ command: OPENSSL_COMMAND, args: [...args], pid: child.pid });
      } catch {
        // An audit hook must not break the import.
      }
    }
    // openssl may exit before reading everything (a file it rejects early): EPIPE is expected then.
    stdin.on('error', () => undefined);
    stdin.end(io.input ?? Buffer.alloc(0));
    if (io.secret !== undefined) {
      const secretPipe = child.stdio[SECRET_FD] as Writable;
      secretPipe.on('error', () => undefined);
      secretPipe.end(`${io.secret}\n`);
    }
  });
}
