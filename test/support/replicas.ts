import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import knex, { Knex } from 'knex';
import { CLI } from './cli';
import { freshDatabase, TestDatabase } from './databases';
import { testDir } from './run-dir';
import { registerSecretSource } from './secrets';
import { SOFTHSM_MODULE } from './softhsm';
import { servedFingerprint } from '../web/support/tls-probe';
import { WebClient } from '../web/support/web-client';

const PIN_FILE = 'hsm-user-pin';
const KEEP_ALIVE = 'setInterval(() => {}, 1 << 30)';

/**
 * One `keyward start` process of a replica set: a home of its own (TLS directory, secrets, log),
 * a port of its own, the set's database and the set's SoftHSM2 configuration. With `isolated`, it
 * runs in a mount namespace of its own (unshare -m), so that the test can take its HSM away from it
 * alone (as a network HSM that one host cannot reach) while the others keep theirs.
 */
export class ReplicaNode {
  readonly home: string;
  private child: ChildProcess | null = null;
  private runs = 0;
  private logFile = '';
  port = 0;

  constructor(
    readonly name: string,
    private readonly baseEnv: () => NodeJS.ProcessEnv,
    readonly isolated: boolean,
  ) {
    this.home = testDir(`replica-${name}`);
    mkdirSync(join(this.home, 'secrets'), { recursive: true, mode: 0o700 });
    registerSecretSource(join(this.home, 'secrets', PIN_FILE));
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    if (!this.child?.pid) throw new Error(`${this.name} is not running`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** This run's console and log. */
  get output(): string {
    return this.logFile && existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  get env(): NodeJS.ProcessEnv {
    return { ...this.baseEnv(), KEYWARD_HOME: this.home };
  }

  /**
   * Spawns `keyward start` and returns at once; `serving()` waits for it. `runEnv` is for this run
   * only (a crash point, say).
   */
  launch(runEnv: NodeJS.ProcessEnv = {}, options: { withoutHsm?: HsmPaths } = {}): void {
    if (this.running) throw new Error(`${this.name} is running already`);
    if (options.withoutHsm && !this.isolated) throw new Error(`${this.name} does not run in a namespace of its own`);
    this.runs += 1;
    this.logFile = join(this.home, `server-${this.runs}.log`);
    const fd = openSync(this.logFile, 'a');
    const env = { ...this.env, KEYWARD_HOST: '127.0.0.1', KEYWARD_PORT: '0', ...runEnv };
    // A process paused at a crash point before it serves has nothing left on its event loop and
    // would exit by itself (running its exit handlers): a timer keeps it there until the SIGKILL.
    const node = [process.execPath, ...(runEnv.KEYWARD_CRASH_AT ? ['--import', `data:text/javascript,${KEEP_ALIVE}`] : []), CLI, 'start'];
    let command = node[0]!;
    let args = node.slice(1);
    if (options.withoutHsm) {
      // Its namespace has no HSM from the first instruction on: the mounts, then exec (same pid).
      const empty = this.emptyHsm();
      const script = 'mount --bind "$1" "$2" && mount --bind "$3" "$4" && shift 4 && exec "$@"';
      [command, args] = ['unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', empty.module, options.withoutHsm.modulePath, empty.tokens, options.withoutHsm.tokenDir, ...node]];
    } else if (this.isolated) {
      // unshare execs the server in place (no fork): the child's pid is the server's.
      [command, args] = ['unshare', ['-m', '--propagation', 'private', ...node]];
    }
    this.child = spawn(command, args, { env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.port = 0;
  }

  async start(runEnv: NodeJS.ProcessEnv = {}, options: { withoutHsm?: HsmPaths } = {}): Promise<void> {
    this.launch(runEnv, options);
    await this.serving();
  }

  /** Waits until this run serves; fails if it exits first. */
  async serving(timeoutMs = 60_000): Promise<void> {
    const match = await this.waitFor(/serving https:\/\/127\.0\.0\.1:(\d+)\//, timeoutMs);
    this.port = Number(match[1]);
  }

  /** Waits until this run's output matches; fails at once if the process has exited. */
  async waitFor(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.output);
      if (match) return match;
      if (!this.running) throw new Error(`${this.name} exited (${this.child?.exitCode ?? this.child?.signalCode}) before printing ${pattern}:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`${this.name} did not print ${pattern} within ${timeoutMs} ms:\n${this.output}`);
      await sleep(50);
    }
  }

  /** The set-up code this run printed, or null. */
  get setupCode(): string | null {
    return /set-up code: ([0-9A-Z-]{29})/.exec(this.output)?.[1] ?? null;
  }

  /** SIGTERM, as an orchestrator stops a replica; resolves with the exit code. */
  async stop(): Promise<number | null> {
    const child = this.child;
    if (!child) return null;
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  }

  /** SIGKILL, as a crash: nothing is finished, no lease is given back. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  /** /readyz: its status and body ("ready: …" or "not ready: why"); a connection error is status 0. */
  readyz(): Promise<{ status: number; body: string }> {
    return new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port: this.port, path: '/readyz', rejectUnauthorized: false, agent: false, timeout: 5_000 }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (error) => resolve({ status: 0, body: error.message }));
      req.end();
    });
  }

  /** The certificate this node presents to a new TLS connection (openssl, an independent client). */
  fingerprint(): string {
    return servedFingerprint(this.port);
  }

  /** A browser-like client of this node; `from` shares another client's cookies (one browser, another replica behind a balancer). */
  client(from?: WebClient): WebClient {
    const client = new WebClient(this.url);
    if (from) for (const [name, value] of from.cookies) client.cookies.set(name, value);
    return client;
  }

  /**
   * Takes the HSM away from this node alone: in its mount namespace, an empty file over the PKCS#11
   * module and an empty directory over the token directory (a host that lost its HSM client and its
   * route to the HSM). Only for an isolated node.
   */
  cutHsm({ modulePath, tokenDir }: HsmPaths): void {
    if (!this.isolated) throw new Error(`${this.name} does not run in a namespace of its own`);
    const empty = this.emptyHsm();
    this.nsenter(['mount', '--bind', empty.module, modulePath]);
    this.nsenter(['mount', '--bind', empty.tokens, tokenDir]);
  }

  /** Gives this node its HSM back (the mounts of cutHsm or of a start `withoutHsm` removed). */
  restoreHsm({ modulePath, tokenDir }: HsmPaths): void {
    this.nsenter(['umount', tokenDir]);
    this.nsenter(['umount', modulePath]);
  }

  /** An empty file to stand for the module, an empty directory for the tokens. */
  private emptyHsm(): { module: string; tokens: string } {
    const empty = join(this.home, 'unreachable');
    mkdirSync(join(empty, 'tokens'), { recursive: true });
    writeFileSync(join(empty, 'module.so'), '');
    return { module: join(empty, 'module.so'), tokens: join(empty, 'tokens') };
  }

  private nsenter(args: string[]): void {
    execFileSync('nsenter', ['-t', String(this.pid), '-m', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  }
}

/** Where a node finds its HSM: the PKCS#11 module and the token directory (see ReplicaNode.cutHsm). */
export interface HsmPaths {
  modulePath: string;
  tokenDir: string;
}

export interface ReplicaSetOptions {
  /** Extra environment for every node. */
  env?: NodeJS.ProcessEnv;
  /** Indexes of the nodes that run in a mount namespace of their own (see ReplicaNode.cutHsm). */
  isolated?: number[];
}

/**
 * N `keyward start` processes on one private PostgreSQL database and one SoftHSM2 token directory
 * (the "network HSM": one softhsm2.conf for every process), each with its own home and port. The
 * user PIN is an orchestrator's secret: after the wizard's HSM step, `mountPin` copies the file the
 * wizard wrote into every other home's secrets directory, as a mounted secret would appear there.
 */
export class ReplicaSet {
  readonly nodes: ReplicaNode[];
  readonly hsmDir: string;
  /** A home for CLI commands (inspect, audit) against the same database and HSM; never a server. */
  readonly operatorHome: string;

  private constructor(
    readonly database: TestDatabase,
    count: number,
    name: string,
    private readonly options: ReplicaSetOptions,
  ) {
    this.hsmDir = testDir(`replicas-hsm-${name}`);
    mkdirSync(this.tokenDir, { recursive: true });
    writeFileSync(this.softhsmConf, `directories.tokendir = ${this.tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    this.operatorHome = testDir(`replicas-operator-${name}`);
    registerSecretSource(join(this.operatorHome, 'secrets', PIN_FILE));
    this.nodes = Array.from({ length: count }, (_, i) => new ReplicaNode(`${name}-${i + 1}`, () => this.env, (options.isolated ?? []).includes(i)));
  }

  /** `count` nodes (not started) on a new database of the suite's PostgreSQL cluster. */
  static async create(name: string, count: number, options: ReplicaSetOptions = {}): Promise<ReplicaSet> {
    return new ReplicaSet(await freshDatabase('postgres', `replicas_${name}`), count, name, options);
  }

  get databaseUrl(): string {
    const config = this.database.config;
    if (config.client !== 'pg') throw new Error('a replica set runs on PostgreSQL');
    return config.connectionString;
  }

  get tokenDir(): string {
    return join(this.hsmDir, 'tokens');
  }

  get softhsmConf(): string {
    return join(this.hsmDir, 'softhsm2.conf');
  }

  get modulePath(): string {
    return SOFTHSM_MODULE;
  }

  get hsm(): HsmPaths {
    return { modulePath: this.modulePath, tokenDir: this.tokenDir };
  }

  /** What every node shares. */
  get env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DATABASE_URL: this.databaseUrl,
      SOFTHSM2_CONF: this.softhsmConf,
      KEYWARD_TLS_SANS: 'localhost,127.0.0.1',
      ...this.options.env,
    };
    delete env.KEYWARD_SQLITE;
    delete env.KEYWARD_CRASH_AT;
    return env;
  }

  node(n: number): ReplicaNode {
    const node = this.nodes[n - 1];
    if (!node) throw new Error(`there is no node ${n}`);
    return node;
  }

  /**
   * Starts the given nodes (all by default) at the same moment: every process is spawned before any
   * is awaited. `envOf` gives a node's run environment (e.g. a crash point for one of them).
   */
  async startAll(which: ReplicaNode[] = this.nodes, envOf: (node: ReplicaNode) => NodeJS.ProcessEnv = () => ({})): Promise<void> {
    for (const node of which) node.launch(envOf(node));
    await Promise.all(which.map((node) => node.serving()));
  }

  async stopAll(which: ReplicaNode[] = this.nodes): Promise<void> {
    await Promise.all(which.map((node) => node.stop()));
  }

  /** Every node stopped together, then started together, as a rollout that restarts all pods at once. */
  async restartAll(envOf?: (node: ReplicaNode) => NodeJS.ProcessEnv): Promise<void> {
    await this.stopAll();
    await this.startAll(this.nodes, envOf);
  }

  /** The shared token directory emptied, as a volatile HSM store loses its tokens. */
  emptyTokens(): void {
    rmSync(this.tokenDir, { recursive: true, force: true });
    mkdirSync(this.tokenDir, { recursive: true });
  }

  /** The user-PIN file one node's wizard wrote, mounted into every other home (and the operator's). */
  mountPin(from: ReplicaNode): void {
    const source = join(from.home, 'secrets', PIN_FILE);
    if (!existsSync(source)) throw new Error(`${from.name} has no ${PIN_FILE} (the wizard's HSM step has not run there)`);
    for (const home of [...this.nodes.map((n) => n.home), this.operatorHome]) {
      if (home === from.home) continue;
      mkdirSync(join(home, 'secrets'), { recursive: true, mode: 0o700 });
      copyFileSync(source, join(home, 'secrets', PIN_FILE));
    }
  }

  /**
   * The set-up code for `node`: its own, if it prints one within a few seconds (each process kept its
   * own before issue 12), else the one another node printed (one code for the deployment).
   */
  async setupCode(node: ReplicaNode, timeoutMs = 30_000): Promise<string> {
    const started = Date.now();
    for (;;) {
      const own = node.setupCode;
      if (own) return own;
      const other = this.nodes.map((n) => n.setupCode).find((c) => c !== null);
      if (other && Date.now() - started > 5_000) return other;
      if (Date.now() - started > timeoutMs) throw new Error(`no node printed a set-up code within ${timeoutMs} ms:\n${this.nodes.map((n) => `--- ${n.name}\n${n.output}`).join('\n')}`);
      await sleep(100);
    }
  }

  /** A keyward CLI command in the operator's home (same database and HSM), in a process of its own. */
  cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
    const result = spawnSync(process.execPath, [CLI, ...args], { env: { ...this.env, KEYWARD_HOME: this.operatorHome }, input: '', encoding: 'utf8', timeout: 60_000 });
    const log = join(this.operatorHome, 'cli.log');
    writeFileSync(log, `${existsSync(log) ? readFileSync(log, 'utf8') : ''}$ keyward ${args.join(' ')}\n${result.stdout}${result.stderr}[exit ${result.status}]\n`);
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  /** `keyward inspect --json` with the whole history. */
  inspect(): Inspected {
    const run = this.cli(['inspect', '--json', '--history', '100000']);
    if (run.status !== 0) throw new Error(`inspect failed (${run.status}): ${run.stderr}`);
    return JSON.parse(run.stdout) as Inspected;
  }

  /** `keyward audit verify --json`: exit code and verdict. */
  auditVerify(): { status: number | null; verdict: Record<string, unknown> | null; stderr: string } {
    const run = this.cli(['audit', 'verify', '--json']);
    let verdict: Record<string, unknown> | null;
    try {
      verdict = JSON.parse(run.stdout) as Record<string, unknown>;
    } catch {
      verdict = null;
    }
    return { status: run.status, verdict, stderr: run.stderr };
  }

  /** Reads the shared database directly (the transition log, the nodes table). */
  async query<T>(fn: (db: Knex) => Promise<T>): Promise<T> {
    const db = knex({ client: 'pg', connection: this.databaseUrl, pool: { min: 0, max: 1 } });
    try {
      return await fn(db);
    } finally {
      await db.destroy();
    }
  }

  /** The transition log in order, as stored. */
  async transitionLog(): Promise<LogRow[]> {
    return this.query(async (db) =>
      (await db('transition_log').orderBy('revision').select('revision', 'event_type', 'source', 'from_state', 'to_state')).map((r: Record<string, unknown>) => ({
        revision: Number(r.revision),
        eventType: String(r.event_type),
        source: String(r.source),
        fromState: String(r.from_state),
        toState: String(r.to_state),
      })),
    );
  }

  /** Polls /readyz of the given nodes until each answers 200, or fails with what each said last. */
  async waitReady(which: ReplicaNode[] = this.nodes.filter((n) => n.running), timeoutMs = 30_000): Promise<number> {
    const started = Date.now();
    let last: Array<{ status: number; body: string }> = [];
    for (;;) {
      last = await Promise.all(which.map((node) => node.readyz()));
      if (last.every((r) => r.status === 200)) return Date.now() - started;
      if (Date.now() - started > timeoutMs) throw new Error(`not ready within ${timeoutMs} ms: ${which.map((n, i) => `${n.name} ${last[i]!.status} ${last[i]!.body}`).join('; ')}`);
      await sleep(100);
    }
  }

  /** Stops every node and drops the database. */
  async close(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.kill()));
    await this.database.drop();
  }
}

export interface Inspected {
  state: string;
  wizardState: string | null;
  scenario: string | null;
  accepts: string[];
  revision: number;
  pendingEffect: { id: string; src: string; owner: Record<string, unknown> } | null;
  context: Record<string, unknown> & { tls?: { fingerprintSha256: string } | null };
  history: Array<Record<string, unknown>>;
  nodes?: Array<Record<string, unknown>>;
}

export interface LogRow {
  revision: number;
  eventType: string;
  source: string;
  fromState: string;
  toState: string;
}

/**
 * What "no transition lost or applied twice" means for a log: revisions 1..n without a gap, and every
 * row starts where the one before it ended. Returns the rows that break it (empty: intact).
 */
export function logBreaks(rows: LogRow[]): string[] {
  const breaks: string[] = [];
  rows.forEach((row, i) => {
    if (row.revision !== i + 1) breaks.push(`row ${i + 1} has revision ${row.revision}`);
    const previous = rows[i - 1];
    if (previous && previous.toState !== row.fromState) breaks.push(`revision ${row.revision} (${row.eventType}) starts at ${row.fromState}, the one before ended at ${previous.toState}`);
  });
  return breaks;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
