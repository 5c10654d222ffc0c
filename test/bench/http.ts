import { ChildProcess, fork, spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig, PROJECT_ROOT } from '../../server/config';
import { KeywardRuntime } from '../../server/runtime';
import { CSRF_COOKIE } from '../../server/web/csrf';
import { TLS_CIPHERS } from '../../server/web/live-tls';
import { WebClient } from '../web/support/web-client';
import type { LoadResult } from './load';
import { medianOfRounds } from './load';
import { BenchReport, BenchResult, scaled, printBench } from './measure';
import { templateOf } from './page-template';

/**
 * `npm run bench -- http`: CPU time per request of each server process (user + system, all threads,
 * from /proc: the figure this shared machine's contention disturbs least), p50 and p99 latency and requests per second of keyward's status page (an
 * administrator's session, four database reads and a template) and of /readyz, under a loopback
 * load generator in a process of its own, against a bare Express handler over the same HTTPS setup
 * rendering through EJS a page of keyward's bytes with keyward's headers, measured in the same run in
 * alternating rounds (drift hits both sides). Ratios are oriented so that higher is better for keyward.
 */
const CONNECTIONS = Number(process.env.KEYWARD_BENCH_CONNECTIONS ?? 8);
const ROUNDS = scaled(5, 2);
const ROUND_MS = Number(process.env.KEYWARD_BENCH_ROUND_MS ?? scaled(1500, 500));
const WARMUP_MS = scaled(1000, 300);
/** Per-response headers: computed by each server itself, not copied. */
const OWN_HEADERS = new Set(['date', 'etag', 'content-length', 'connection', 'keep-alive', 'transfer-encoding']);

const DEFINITIONS = [
  "a bare Express 5 app in its own process over node:https with keyward's key, certificate and cipher list (TLSv1.2 minimum): /status renders through " +
    "Express's EJS view engine (view cache on, as keyward) a template that yields keyward's status page byte for byte (each text node an " +
    "escaped interpolation), /readyz sends keyward's body; both set the response headers keyward sent on that path (helmet's, Cache-Control, " +
    "cookies; Date, ETag and Content-Length each server computes). No session, no database read, no CSRF token: that is keyward's own work.",
  'load: a node:https client in a third process (forked), keep-alive connections each sending its next request when the answer is in; ' +
    'on /status the cookies a browser holds after opening the page once (its session, and the CSRF cookie keyward then checks and sends again).',
];
const CLI = join(PROJECT_ROOT, 'dist', 'server', 'cli.js');

export interface Child {
  process: ChildProcess;
  url: string;
}

export async function startChild(args: string[], env: NodeJS.ProcessEnv, logFile: string, ready: RegExp): Promise<Child> {
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const match = ready.exec(readFileSync(logFile, 'utf8'));
    if (match) return { process: child, url: match[1]! };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${args.join(' ')} did not start:\n${readFileSync(logFile, 'utf8')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function stopChild(child: Child): Promise<void> {
  if (child.process.exitCode !== null) return;
  const exited = new Promise((resolve) => child.process.once('exit', resolve));
  child.process.kill('SIGTERM');
  await exited;
}

/** A completed software-storage install with an administrator, made through the lifecycle as any install is. */
async function install(home: string, adminPassword: string): Promise<void> {
  const runtime = new KeywardRuntime(loadConfig({ ...process.env, KEYWARD_HOME: home, KEYWARD_TLS_SANS: 'localhost,127.0.0.1', DATABASE_URL: '' }));
  try {
    await runtime.boot('bench');
    const steps: Array<[string, Record<string, unknown>, Record<string, string>]> = [
      ['SELECT_STORAGE', { storageType: 'software' }, {}],
      ['CHOOSE_FRESH', {}, {}],
      ['GENERATE_TLS', { subjectAltNames: ['localhost', '127.0.0.1'] }, {}],
      ['APPLY_TLS', {}, {}],
      ['ADD_DEMO_DATA', {}, {}],
      ['CREATE_ADMIN', { username: 'bench' }, { password: adminPassword }],
    ];
    for (const [type, payload, secrets] of steps) {
      const result = await runtime.send(type, payload, secrets, 'bench');
      if (result.outcome !== 'applied') throw new Error(`${type}: ${result.outcome} ${result.message ?? ''}`);
    }
  } finally {
    await runtime.close();
  }
}

interface Target {
  url: URL;
  headers: Record<string, string>;
  /** The serving process, when its CPU time per round is read from /proc. */
  pid?: number;
}

/** A process's CPU time (user + system) so far, in milliseconds, from /proc/PID/stat. */
function cpuMs(pid: number): number {
  // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}
const CLOCK_TICKS = 100;

/** A load round and the server's CPU milliseconds per request in it (contention stretches time, hardly CPU). */
async function cpuRound(load: LoadProcess, target: Target, durationMs: number): Promise<LoadResult & { cpuMsPerRequest: number }> {
  const pid = target.pid!;
  const before = cpuMs(pid);
  const result = await load.round(target, durationMs);
  return { ...result, cpuMsPerRequest: (cpuMs(pid) - before) / Math.max(1, result.requests) };
}

/** The forked load generator: one round per message. */
export class LoadProcess {
  private readonly child = fork(join(__dirname, 'load-child.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });

  round(target: Target, durationMs: number): Promise<LoadResult> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`the load generator exited (${code})`));
      this.child.once('exit', onExit);
      this.child.once('message', (message: { result?: LoadResult; error?: string }) => {
        this.child.off('exit', onExit);
        if (message.result) resolve(message.result);
        else reject(new Error(`the load generator failed: ${message.error}`));
      });
      this.child.send({ url: target.url.toString(), connections: CONNECTIONS, durationMs, headers: target.headers });
    });
  }

  stop(): void {
    if (this.child.connected) this.child.disconnect();
  }
}

/** keyward's and the baseline's target in alternating rounds (the first alternating too), after a warm-up of each. */
async function measure(load: LoadProcess, ours: Target, bare: Target): Promise<{ ours: Measured; bare: Measured }> {
  await load.round(ours, WARMUP_MS);
  await load.round(bare, WARMUP_MS);
  const a: Array<Awaited<ReturnType<typeof cpuRound>>> = [];
  const b: typeof a = [];
  for (let i = 0; i < ROUNDS; i++) {
    if (i % 2 === 0) {
      b.push(await cpuRound(load, bare, ROUND_MS));
      a.push(await cpuRound(load, ours, ROUND_MS));
    } else {
      a.push(await cpuRound(load, ours, ROUND_MS));
      b.push(await cpuRound(load, bare, ROUND_MS));
    }
  }
  const medianCpu = (rounds: typeof a) => rounds.map((r) => r.cpuMsPerRequest).sort((x, y) => x - y)[Math.floor(rounds.length / 2)]!;
  const result = { ours: { ...medianOfRounds(a), cpuMsPerRequest: medianCpu(a) }, bare: { ...medianOfRounds(b), cpuMsPerRequest: medianCpu(b) } };
  for (const [side, r] of Object.entries(result)) if (r.errors > 0) throw new Error(`${side} ${ours.url.pathname}: ${r.errors} requests did not answer 200`);
  return result;
}

const round = (value: number, digits = 3) => Number(value.toFixed(digits));

type Measured = LoadResult & { cpuMsPerRequest: number };

function compare(name: string, { ours: keyward, bare }: { ours: Measured; bare: Measured }): BenchResult[] {
  return [
    { name: `${name} CPU per request`, value: round(keyward.cpuMsPerRequest), unit: 'ms', baseline: round(bare.cpuMsPerRequest), ratio: round(bare.cpuMsPerRequest / keyward.cpuMsPerRequest) },
    { name: `${name} p50`, value: round(keyward.p50), unit: 'ms', baseline: round(bare.p50), ratio: round(bare.p50 / keyward.p50) },
    { name: `${name} p99`, value: round(keyward.p99), unit: 'ms', baseline: round(bare.p99), ratio: round(bare.p99 / keyward.p99) },
    { name: `${name} throughput`, value: round(keyward.rps, 1), unit: 'req/s', baseline: round(bare.rps, 1), ratio: round(keyward.rps / bare.rps) },
  ];
}

/** keyward's response headers that the baseline sets too: all but those each server computes per response. */
function sameHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  return Object.fromEntries(Object.entries(headers).filter((entry): entry is [string, string | string[]] => entry[1] !== undefined && !OWN_HEADERS.has(entry[0])));
}

/** KEYWARD_BENCH_CPU_PROFILE=DIR: both servers write a V8 CPU profile there (the files are named by process id). */
const profiling = process.env.KEYWARD_BENCH_CPU_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.KEYWARD_BENCH_CPU_PROFILE}`] : [];

export async function run(): Promise<BenchReport & { bench: 'http' }> {
  const home = mkdtempSync(join(tmpdir(), 'keyward-bench-http-'));
  const children: Child[] = [];
  const load = new LoadProcess();
  try {
    const adminPassword = `Bench-${randomBytes(12).toString('base64url')}`;
    await install(home, adminPassword);
    const keyward = await startChild(
      [...profiling, CLI, 'start'],
      { KEYWARD_HOME: home, KEYWARD_PORT: '0', KEYWARD_HOST: '127.0.0.1', DATABASE_URL: '' },
      join(home, 'keyward.log'),
      /serving (https:\/\/127\.0\.0\.1:\d+\/)/,
    );
    children.push(keyward);

    const client = new WebClient(keyward.url);
    const login = await client.postForm('/login', '/login', { username: 'bench', password: adminPassword });
    if (login.status !== 303) throw new Error(`the bench could not log in: HTTP ${login.status}`);
    await client.get('/status');
    // What a browser sends when the page is reloaded: the session cookie and the CSRF cookie of the page it holds.
    const cookie = [...client.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (!cookie.includes(CSRF_COOKIE)) throw new Error('keyward set no CSRF cookie on its status page');
    // The page as the load gets it, reloaded with those cookies: its bytes and headers are the baseline's.
    const statusPage = await client.get('/status');
    const readyz = await client.get('/readyz');
    if (statusPage.status !== 200 || readyz.status !== 200) throw new Error(`keyward is not ready for the bench: /status ${statusPage.status}, /readyz ${readyz.status}`);

    const bareDir = join(home, 'bare');
    mkdirSync(bareDir, { mode: 0o700 });
    const { template, locals } = templateOf(statusPage.body);
    writeFileSync(join(bareDir, 'status.ejs'), template);
    writeFileSync(join(bareDir, 'status-locals.json'), JSON.stringify(locals));
    writeFileSync(join(bareDir, 'readyz.txt'), readyz.body);
    writeFileSync(join(bareDir, 'headers.json'), JSON.stringify({ status: sameHeaders(statusPage.headers), readyz: sameHeaders(readyz.headers) }));
    writeFileSync(join(home, 'bare.log'), '');
    const bare = await startChild(
      [...profiling, join(__dirname, 'bare-server.js')],
      { BARE_DIR: bareDir, BARE_KEY: join(home, 'tls', 'server.key'), BARE_CERT: join(home, 'tls', 'fullchain.crt'), BARE_CIPHERS: TLS_CIPHERS },
      join(home, 'bare.log'),
      /bare serving (https:\/\/127\.0\.0\.1:\d+\/)/,
    );
    children.push(bare);
    await assertSameResponses(new URL(keyward.url), cookie, new URL(bare.url), statusPage.body, readyz.body);

    process.stdout.write(`http: ${CONNECTIONS} keep-alive HTTPS connections on loopback; ${ROUNDS} alternating rounds of ${ROUND_MS / 1000} s per target after ${WARMUP_MS / 1000} s warm-up\n`);
    const results = [
      ...compare(
        'status page',
        await measure(
          load,
          { url: new URL('/status', keyward.url), headers: { cookie, accept: 'text/html' }, pid: keyward.process.pid! },
          { url: new URL('/status', bare.url), headers: { cookie, accept: 'text/html' }, pid: bare.process.pid! },
        ),
      ),
      ...compare(
        '/readyz',
        await measure(load, { url: new URL('/readyz', keyward.url), headers: {}, pid: keyward.process.pid! }, { url: new URL('/readyz', bare.url), headers: {}, pid: bare.process.pid! }),
      ),
    ];
    return { bench: 'http', definitions: DEFINITIONS, results };
  } finally {
    load.stop();
    for (const child of children.reverse()) await stopChild(child);
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * The baseline answers what keyward answers: the same status page bytes (keyward's own page, with
 * its CSRF token, is the same length on every request) and /readyz body, and the same header names.
 */
async function assertSameResponses(keyward: URL, cookie: string, bare: URL, statusBody: string, readyzBody: string): Promise<void> {
  const ours = new WebClient(keyward.toString());
  const theirs = new WebClient(bare.toString());
  for (const [path, headers, body] of [
    ['/status', { cookie }, statusBody],
    ['/readyz', {}, readyzBody],
  ] as const) {
    const a = await ours.get(path, headers);
    const b = await theirs.get(path, headers);
    const names = (h: IncomingHttpHeaders) => Object.keys(h).sort().join(',');
    if (b.body !== body || Buffer.byteLength(a.body) !== Buffer.byteLength(b.body) || names(a.headers) !== names(b.headers) || a.status !== 200 || b.status !== 200) {
      throw new Error(
        `the bare ${path} does not answer like keyward: ${a.status}/${b.status}, ${Buffer.byteLength(a.body)}/${Buffer.byteLength(b.body)} bytes, headers ${names(a.headers)} / ${names(b.headers)}`,
      );
    }
  }
}

// Also runnable on its own: node dist/test/bench/http.js (the table, then the JSON line).
if (require.main === module) void printBench('http', run);
