import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase } from '../../../db/database';
import { PROJECT_ROOT } from '../../../server/config';
import { testDir } from '../../support/run-dir';
import { registerSecretShownIn, registerSecretSource } from '../../support/secrets';

export const CLI = join(PROJECT_ROOT, 'dist', 'server', 'cli.js');

export function requireBuild(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npm test does; or: npx tsc -p .)`);
}

/**
 * A real keyward server (`node dist/server/cli.js start`) in its own home under the run directory,
 * with a private SoftHSM token directory. Its stdout and stderr go to log files in the home, which
 * the end-of-suite secret scan reads. Restartable on the same home, as after a container restart.
 */
export class KeywardServer {
  readonly home: string;
  private child: ChildProcess | null = null;
  private runs = 0;
  private logFile = '';
  port = 0;

  constructor(
    name: string,
    private readonly extraEnv: NodeJS.ProcessEnv = {},
  ) {
    requireBuild();
    this.home = testDir(`web-${name}`);
    mkdirSync(this.tokenDir, { recursive: true });
    writeFileSync(join(this.home, 'softhsm2.conf'), `directories.tokendir = ${this.tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    // The user PIN file keyward keeps on purpose.
    registerSecretSource(join(this.home, 'secrets', 'hsm-user-pin'));
  }

  get tokenDir(): string {
    return join(this.home, 'tokens');
  }

  /** The server process, while it runs (its /proc entry has the peak memory). */
  get pid(): number {
    if (!this.child?.pid) throw new Error('the server is not running');
    return this.child.pid;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** The console and log of the current run. */
  get output(): string {
    return this.logFile ? readFileSync(this.logFile, 'utf8') : '';
  }

  /** Every TLS fingerprint the console announced in this run, in order. */
  get announcedFingerprints(): string[] {
    return [...this.output.matchAll(/TLS SHA-256 ([0-9A-F:]{95})/g)].map((m) => m[1]!);
  }

  get lastAnnouncedFingerprint(): string {
    const all = this.announcedFingerprints;
    if (all.length === 0) throw new Error('the server announced no TLS fingerprint');
    return all[all.length - 1]!;
  }

  /** `runEnv`: variables for this run only, over the instance's (a restart without them drops them). */
  async start(runEnv: NodeJS.ProcessEnv = {}): Promise<void> {
    if (this.child) throw new Error('the server is running already');
    this.runs += 1;
    this.logFile = join(this.home, `server-${this.runs}.log`);
    const fd = openSync(this.logFile, 'a');
    // SQLite in the home unless this server was given a DATABASE_URL (replicas on one PostgreSQL).
    const { DATABASE_URL: _inherited, ...inherited } = process.env;
    const env: NodeJS.ProcessEnv = {
      ...inherited,
      KEYWARD_HOME: this.home,
      KEYWARD_HOST: '127.0.0.1',
      KEYWARD_PORT: '0',
      KEYWARD_TLS_SANS: 'localhost,127.0.0.1',
      KEYWARD_WATCH_INTERVAL_MS: '300',
      SOFTHSM2_CONF: join(this.home, 'softhsm2.conf'),
      ...this.extraEnv,
      ...runEnv,
    };
    const child = spawn(process.execPath, [CLI, 'start'], { env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.child = child;
    const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`the server exited (${code}) before serving:\n${this.output}`))));
    const match = await Promise.race([this.waitFor(/serving https:\/\/127\.0\.0\.1:(\d+)\//), exited]);
    this.port = Number(match[1]);
  }

  /** Waits until the output of this run matches. */
  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.output);
      if (match) return match;
      if (Date.now() > deadline) throw new Error(`the server did not print ${pattern} within ${timeoutMs} ms:\n${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** The console log of the current run. */
  get logPath(): string {
    return this.logFile;
  }

  /**
   * The one-time set-up code this run printed (it prints one when the lifecycle needs a set-up),
   * registered for the end-of-suite scan: only this run's console may hold it.
   */
  async setupCode(): Promise<string> {
    const code = (await this.waitFor(/set-up code: ([0-9A-Z-]{29})/))[1]!;
    registerSecretShownIn(code, this.logFile);
    registerSecretShownIn(code.replace(/-/g, ''), this.logFile);
    return code;
  }

  /** SIGTERM, as an orchestrator stops it; resolves with the exit code. */
  async stop(): Promise<number | null> {
    const child = this.child;
    if (!child) return null;
    this.child = null;
    if (child.exitCode !== null) return child.exitCode;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  }

  async restart(runEnv: NodeJS.ProcessEnv = {}): Promise<void> {
    await this.stop();
    await this.start(runEnv);
  }

  /** SIGKILL, as a crash: nothing is finished or closed. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  /** pkcs11-tool (an independent client) against this home's tokens; a PIN only through an env: reference. */
  pkcs11Tool(args: string[], pin?: string): string {
    return execFileSync('pkcs11-tool', ['--module', '/usr/lib/softhsm/libsofthsm2.so', ...args], {
      env: { ...process.env, SOFTHSM2_CONF: join(this.home, 'softhsm2.conf'), ...(pin ? { KW_TEST_PIN: pin } : {}) },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** The CKA_IDs of the KEKs on this home's token, as pkcs11-tool lists them. */
  kekIdsOnToken(pin: string, tokenLabel = 'Trustpoint-SoftHSM'): string[] {
    const listing = this.pkcs11Tool(['--token-label', tokenLabel, '--login', '--pin', 'env:KW_TEST_PIN', '--list-objects', '--type', 'secrkey'], pin);
    return listing
      .split(/Secret Key Object/)
      .filter((object) => /label:\s+trustpoint-kek\s/.test(object))
      .map((object) => /ID:\s+([0-9a-f]+)/.exec(object)?.[1] ?? '');
  }

  /** Reads (or, while the server is stopped, changes) the home's SQLite database. */
  async query<T>(fn: (db: ReturnType<typeof openDatabase>) => Promise<T>): Promise<T> {
    const db = openDatabase({ client: 'sqlite', filename: join(this.home, 'keyward.sqlite') });
    try {
      return await fn(db);
    } finally {
      await db.destroy();
    }
  }

  /** As a container with a volatile token directory loses its tokens. */
  deleteTokens(): void {
    rmSync(this.tokenDir, { recursive: true, force: true });
    mkdirSync(this.tokenDir, { recursive: true });
  }
}
