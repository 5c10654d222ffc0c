import { ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig, PROJECT_ROOT } from '../../server/config';
import { KeywardRuntime } from '../../server/runtime';
import { WebClient } from '../web/support/web-client';
import { generateLoad, LoadResult, mergeRounds } from './load';
import { BenchReport, BenchResult, printTable } from './measure';

/**
 * `npm run bench -- http`: p50 and p99 latency and requests per second of keyward's status page (an
 * administrator's session, four database reads and a template) and of /readyz, under a loopback
 * load generator, against a bare Express handler over the same HTTPS setup with a body of the same
 * size, measured in the same run in alternating rounds (drift hits both sides). Ratios are oriented
 * so that higher is better for keyward.
 */
const CONNECTIONS = Number(process.env.KEYWARD_BENCH_CONNECTIONS ?? 8);
const ROUNDS = 3;
const ROUND_MS = Number(process.env.KEYWARD_BENCH_ROUND_MS ?? 1500);
const WARMUP_MS = 1000;
const CLI = join(PROJECT_ROOT, 'dist', 'server', 'cli.js');

interface Child {
  process: ChildProcess;
  url: string;
}

async function startChild(args: string[], env: NodeJS.ProcessEnv, logFile: string, ready: RegExp): Promise<Child> {
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

async function stopChild(child: Child): Promise<void> {
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
}

/** keyward's and the baseline's target in alternating rounds, after a warm-up of each. */
async function measure(ours: Target, bare: Target): Promise<{ ours: LoadResult; bare: LoadResult }> {
  const round = (target: Target, durationMs: number) => generateLoad(target.url, { connections: CONNECTIONS, durationMs, headers: target.headers });
  await round(ours, WARMUP_MS);
  await round(bare, WARMUP_MS);
  const a: LoadResult[] = [];
  const b: LoadResult[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    b.push(await round(bare, ROUND_MS));
    a.push(await round(ours, ROUND_MS));
  }
  const result = { ours: mergeRounds(a), bare: mergeRounds(b) };
  for (const [side, r] of Object.entries(result)) if (r.errors > 0) throw new Error(`${side} ${ours.url.pathname}: ${r.errors} requests did not answer 200`);
  return result;
}

const round = (value: number, digits = 3) => Number(value.toFixed(digits));

function compare(name: string, { ours: keyward, bare }: { ours: LoadResult; bare: LoadResult }): BenchResult[] {
  return [
    { name: `${name} p50`, value: round(keyward.p50), unit: 'ms', baseline: round(bare.p50), ratio: round(bare.p50 / keyward.p50) },
    { name: `${name} p99`, value: round(keyward.p99), unit: 'ms', baseline: round(bare.p99), ratio: round(bare.p99 / keyward.p99) },
    { name: `${name} throughput`, value: round(keyward.rps, 1), unit: 'req/s', baseline: round(bare.rps, 1), ratio: round(keyward.rps / bare.rps) },
  ];
}

export async function run(): Promise<BenchReport & { bench: 'http' }> {
  const home = mkdtempSync(join(tmpdir(), 'keyward-bench-http-'));
  const children: Child[] = [];
  try {
    const adminPassword = `Bench-${randomBytes(12).toString('base64url')}`;
    await install(home, adminPassword);
    const keyward = await startChild([CLI, 'start'], { KEYWARD_HOME: home, KEYWARD_PORT: '0', KEYWARD_HOST: '127.0.0.1', DATABASE_URL: '' }, join(home, 'keyward.log'), /serving (https:\/\/127\.0\.0\.1:\d+\/)/);
    children.push(keyward);

    const client = new WebClient(keyward.url);
    const login = await client.postForm('/login', '/login', { username: 'bench', password: adminPassword });
    if (login.status !== 303) throw new Error(`the bench could not log in: HTTP ${login.status}`);
    const cookie = [...client.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    const statusPage = await client.get('/status');
    const readyz = await client.get('/readyz');
    if (statusPage.status !== 200 || readyz.status !== 200) throw new Error(`keyward is not ready for the bench: /status ${statusPage.status}, /readyz ${readyz.status}`);

    const bareScript = join(__dirname, 'bare-server.js');
    writeFileSync(join(home, 'bare.log'), '');
    const bare = await startChild(
      [bareScript],
      { BARE_KEY: join(home, 'tls', 'server.key'), BARE_CERT: join(home, 'tls', 'fullchain.crt'), BARE_STATUS_BYTES: String(Buffer.byteLength(statusPage.body)), BARE_READYZ_BYTES: String(Buffer.byteLength(readyz.body)) },
      join(home, 'bare.log'),
      /bare serving (https:\/\/127\.0\.0\.1:\d+\/)/,
    );
    children.push(bare);

    process.stdout.write(`http: ${CONNECTIONS} keep-alive HTTPS connections on loopback; ${ROUNDS} alternating rounds of ${ROUND_MS / 1000} s per target after ${WARMUP_MS / 1000} s warm-up\n`);
    const results = [
      ...compare('status page', await measure({ url: new URL('/status', keyward.url), headers: { cookie, accept: 'text/html' } }, { url: new URL('/status', bare.url), headers: { accept: 'text/html' } })),
      ...compare('/readyz', await measure({ url: new URL('/readyz', keyward.url), headers: {} }, { url: new URL('/readyz', bare.url), headers: {} })),
    ];
    return { bench: 'http', results };
  } finally {
    for (const child of children.reverse()) await stopChild(child);
    rmSync(home, { recursive: true, force: true });
  }
}

// Also runnable on its own: node dist/test/bench/http.js (the table, then the JSON line).
if (require.main === module) {
  run().then(
    (report) => {
      printTable(report);
      process.stdout.write(`${JSON.stringify(report)}\n`);
    },
    (error: Error) => {
      process.stderr.write(`bench http: ${error.message}\n`);
      process.exitCode = 1;
    },
  );
}
