import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testDir } from './run-dir';

/** The outside review's numbers: 4 GiB of Argon2id memory, 64 passes, 64 lanes. */
export const BOMB_KDF = { memoryKiB: 4 * 1024 * 1024, iterations: 64, parallelism: 64 };

/**
 * The 196-byte archive of the outside review, laid out from docs/backup-format.md (not with
 * keyward's writer): a header whose checksum is right and whose KDF parameters are the largest the
 * format documents, a random "segment" and a valid trailer. Deriving from it costs gigabytes and
 * minutes; everything else in it is garbage that only a derivation would discover.
 */
export function kdfBombArchive(name = 'kdf-bomb.kwbak'): string {
  const version = Buffer.from('0.1.0', 'utf8');
  const header = Buffer.alloc(51 + version.length);
  Buffer.from([0x89, 0x4b, 0x57, 0x41, 0x0d, 0x0a, 0x1a, 0x0a]).copy(header, 0);
  header.writeUInt16BE(1, 8);
  header.writeUInt16BE(75 + version.length, 10);
  header[12] = 2; // Argon2id
  header[13] = 0x13;
  header.writeUInt32BE(BOMB_KDF.memoryKiB, 14);
  header.writeUInt32BE(BOMB_KDF.iterations, 18);
  header[22] = BOMB_KDF.parallelism;
  randomBytes(16).copy(header, 23); // salt
  randomBytes(7).copy(header, 39); // nonce prefix
  header.writeUInt32BE(65536, 46);
  header[50] = version.length;
  version.copy(header, 51);
  const body = Buffer.concat([header, randomBytes(16)]); // + verifier
  const sealed = Buffer.concat([body, createHash('sha256').update(body).digest().subarray(0, 8)]);
  const total = sealed.length + 100 + 16;
  const trailer = Buffer.alloc(16);
  Buffer.from('KWA-END\n', 'ascii').copy(trailer, 0);
  trailer.writeBigUInt64BE(BigInt(total), 8);
  const file = Buffer.concat([sealed, randomBytes(100), trailer]);
  const path = join(testDir('kdf-bomb'), name);
  writeFileSync(path, file);
  return path;
}

export interface MeasuredRun {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Wall time of the whole process, start-up included. */
  elapsedMs: number;
  /** Peak resident memory of the process (its VmHWM), as GNU time reports it. */
  maxRssKiB: number;
  timedOut: boolean;
}

/**
 * Runs a command under GNU time (`/usr/bin/time -f %M`), in its own process group so that a
 * timeout kills the measured process too (a KDF bomb must not outlive a failing test).
 */
export function runMeasured(command: string, args: string[], options: { env: NodeJS.ProcessEnv; stdin?: string; timeoutMs: number }): Promise<MeasuredRun> {
  const report = join(testDir('measured'), `time-${randomBytes(6).toString('hex')}.txt`);
  const started = process.hrtime.bigint();
  const child = spawn('/usr/bin/time', ['-f', '%M', '-o', report, command, ...args], { env: options.env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  child.stdin.end(options.stdin ?? '');
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    process.kill(-child.pid!, 'SIGKILL');
  }, options.timeoutMs);
  return new Promise((resolve) => {
    child.once('close', (status) => {
      clearTimeout(timer);
      const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
      let maxRssKiB = Number.NaN;
      try {
        maxRssKiB = Number(/^(\d+)\s*$/m.exec(readFileSync(report, 'utf8'))?.[1]);
      } catch {
        // killed before GNU time could write its report
      }
      resolve({ status, stdout, stderr, elapsedMs, maxRssKiB, timedOut });
    });
  });
}

/** A memory figure of a running process, from /proc/<pid>/status. */
function statusKiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no ${field} for process ${pid}`);
  return Number(match[1]);
}

/** Peak resident memory (VmHWM). */
export function peakRssKiB(pid: number): number {
  return statusKiB(pid, 'VmHWM');
}

/** Resident memory now (VmRSS). */
export function residentKiB(pid: number): number {
  return statusKiB(pid, 'VmRSS');
}
