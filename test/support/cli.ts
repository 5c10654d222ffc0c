import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../server/config';
import { testDir } from './run-dir';
import { registerSecretSource } from './secrets';

export const CLI = join(PROJECT_ROOT, 'dist', 'server', 'cli.js');

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A keyward home driven only through the real CLI, in real processes (the build in dist/). Every
 * run's output is appended to a log file in the home, so the end-of-suite scan reads it.
 */
export class CliHome {
  readonly home: string;
  readonly env: NodeJS.ProcessEnv;
  readonly log: string;
  private secretCount = 0;

  constructor(name: string, extraEnv: NodeJS.ProcessEnv = {}) {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npm test does; or npx tsc -p .)`);
    this.home = testDir(`cli-${name}`);
    mkdirSync(join(this.home, 'tokens'), { recursive: true });
    writeFileSync(join(this.home, 'softhsm2.conf'), `directories.tokendir = ${join(this.home, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    registerSecretSource(join(this.home, 'secrets', 'hsm-user-pin'));
    this.log = join(this.home, 'cli.log');
    this.env = {
      ...process.env,
      KEYWARD_HOME: this.home,
      SOFTHSM2_CONF: join(this.home, 'softhsm2.conf'),
      KEYWARD_TLS_SANS: 'localhost,127.0.0.1',
      ...extraEnv,
    };
  }

  get tokenDir(): string {
    return join(this.home, 'tokens');
  }

  run(args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): CliRun {
    const result = spawnSync(process.execPath, [CLI, ...args], { env: { ...this.env, ...options.env }, input: options.stdin ?? '', encoding: 'utf8', timeout: 60_000 });
    appendFileSync(this.log, `$ keyward ${args.join(' ')}\n${result.stdout}${result.stderr}[exit ${result.status}]\n`);
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  /** A long-running CLI process (a server, or a command to kill mid-effect); output goes to the log. */
  spawn(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...this.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk: Buffer) => appendFileSync(this.log, chunk));
    child.stderr.on('data', (chunk: Buffer) => appendFileSync(this.log, chunk));
    return child;
  }

  /** `keyward start` on loopback at a free port; resolves once it serves. Stop it with SIGTERM. */
  startServer(env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; port: number }> {
    const child = this.spawn(['start'], { KEYWARD_PORT: '0', KEYWARD_HOST: '127.0.0.1', ...env });
    child.stdin!.end();
    return new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`the server did not start: ${out}`)), 30_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /serving https:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
        if (match) {
          clearTimeout(timer);
          resolve({ child, port: Number(match[1]) });
        }
      });
      child.on('exit', () => reject(new Error(`the server exited: ${out}`)));
    });
  }

  /** A command in its own process without blocking this one's event loop (spawnSync would). */
  runAsync(args: string[]): Promise<CliRun> {
    const child = this.spawn(args);
    child.stdin!.end();
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    return new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
  }

  /**
   * Runs a command with KEYWARD_CRASH_AT=checkpoint, waits until the process says it is paused
   * there, and kills it with SIGKILL: a crash inside that effect. Fails if the point is never reached.
   */
  async killAt(checkpoint: string, args: string[]): Promise<void> {
    const child = this.spawn(args, { KEYWARD_CRASH_AT: checkpoint });
    child.stdin!.end();
    await new Promise<void>((resolve, reject) => {
      let stderr = '';
      const timer = setTimeout(() => reject(new Error(`checkpoint ${checkpoint} not reached within 30 s: ${stderr}`)), 30_000);
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes(`paused at checkpoint ${checkpoint}`)) {
          child.kill('SIGKILL');
        }
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (signal === 'SIGKILL') resolve();
        else reject(new Error(`keyward ${args.join(' ')} exited (${code}) before checkpoint ${checkpoint}: ${stderr}`));
      });
    });
  }

  /** Writes a secret to a file (0600) for --secret NAME=file:PATH; the file is a declared secret source. */
  secretFile(value: string): string {
    const dir = join(this.home, 'given');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, `secret-${++this.secretCount}`);
    writeFileSync(path, `${value}\n`, { mode: 0o600 });
    registerSecretSource(path);
    return path;
  }

  send(event: string, payload?: Record<string, unknown>, secrets: Record<string, string> = {}): CliRun {
    const args = ['send', event];
    if (payload) args.push('--payload', JSON.stringify(payload));
    for (const [name, value] of Object.entries(secrets)) args.push('--secret', `${name}=file:${this.secretFile(value)}`);
    return this.run(args);
  }

  inspect(): { state: string; wizardState: string | null; scenario: string | null; accepts: string[]; revision: number; context: Record<string, unknown>; history: Array<Record<string, unknown>> } {
    const run = this.run(['inspect', '--json', '--history', '1000']);
    if (run.status !== 0) throw new Error(`inspect failed: ${run.stderr}`);
    return JSON.parse(run.stdout) as ReturnType<CliHome['inspect']>;
  }
}
