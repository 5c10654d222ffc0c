import { ChildProcess, fork, Serializable } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DatabaseConfig } from '../../db/database';
import { loadConfig } from '../../server/config';
import { KeywardRuntime } from '../../server/runtime';
import { WebClient } from '../web/support/web-client';
import { withPrivateCluster, withScratchPostgres } from './events';
import { Child, startChild, stopChild } from './http';
import { CLI, withoutKeywardSettings } from './installs';
import type { LoadResult } from './load';
import { BenchReport, interleave, printBench, scaled } from './measure';

/**
 * `npm run bench -- replicas`: what three keyward nodes on one PostgreSQL database do against one,
 * in the same run, in interleaved rounds (medians): persisted events per second (the engine's commit
 * path, as `npm run bench -- events` measures it, from three nodes' engines at once on one lifecycle
 * row against one node's alone) and status-page requests per second (the same client load spread over
 * three `keyward start` nodes against all of it on one). The ratio is three over one: above 1, the
 * third replica pays for itself on this machine.
 */
const NODES = 3;
const STATUS_ROUNDS = scaled(5, 2);
const STATUS_ROUND_MS = scaled(1500, 500);
const EVENT_ROUNDS = scaled(9, 3);
const EVENT_ROUND_MS = scaled(500, 300);
/** Keep-alive connections per load process; the load is the same in both configurations. */
const CONNECTIONS_PER_LOADER = 3;
const BENCH_DEPLOYMENT = 'bench-events';

const definitions = (pg: string) => [
  `one node: the same work against one keyward process, with the other ${NODES - 1} running idle on the same database (${pg}), measured in the same run in alternating rounds.`,
  `events: BOOT with the probe of a physical-HSM outage (no effect: load, transition, one CAS update and one chained log row) sent in a loop by ${NODES} node engines at once ` +
    `(each a process of its own, KeywardRuntime as \`keyward start\` runs it) on one lifecycle row of its own ("${BENCH_DEPLOYMENT}"), against one engine alone; ` +
    'a conflict the engine could not retry away is not counted.',
  `status page: ${NODES} load processes of ${CONNECTIONS_PER_LOADER} keep-alive HTTPS connections each, an administrator's session (sessions live in the database), ` +
    `each process on its own node against all three on one node. The machine has ${cpus().length} CPUs for the nodes, PostgreSQL and the load together.`,
];

export async function run(): Promise<BenchReport> {
  const root = mkdtempSync(join(tmpdir(), 'keyward-bench-replicas-'));
  try {
    const url = process.env.KEYWARD_BENCH_PG_URL;
    const measure = (server: string) => withScratchPostgres(server, (config, name) => measureReplicas(root, config, `${name}${url ? ', KEYWARD_BENCH_PG_URL' : ', a private cluster'}`));
    return url ? await measure(url) : await withPrivateCluster('on', measure);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function measureReplicas(root: string, database: DatabaseConfig, pgName: string): Promise<BenchReport> {
  if (database.client !== 'pg') throw new Error('the replicas bench runs on PostgreSQL');
  const databaseUrl = database.connectionString;
  const base = { ...withoutKeywardSettings(process.env), DATABASE_URL: databaseUrl, KEYWARD_TLS_SANS: 'localhost,127.0.0.1' };
  const adminPassword = `Bench-${randomBytes(12).toString('base64url')}`;
  await install(mkdtempSync(join(root, 'installer-')), base, adminPassword);

  const nodes: Child[] = [];
  const loaders: LoadChild[] = [];
  const writers: Writer[] = [];
  try {
    // One after another: the bench measures serving, not a simultaneous start (the tests do that).
    for (let i = 0; i < NODES; i++) {
      const home = mkdtempSync(join(root, `node-${i + 1}-`));
      nodes.push(await startChild([CLI, 'start'], { ...base, KEYWARD_HOME: home, KEYWARD_PORT: '0', KEYWARD_HOST: '127.0.0.1' }, join(home, 'node.log'), /serving (https:\/\/127\.0\.0\.1:\d+\/)/));
    }
    const client = new WebClient(nodes[0]!.url);
    const login = await client.postForm('/login', '/login', { username: 'bench', password: adminPassword });
    if (login.status !== 303) throw new Error(`the bench could not log in: HTTP ${login.status}`);
    const cookie = [...client.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    for (const node of nodes) {
      const page = await new WebClient(node.url).get('/status', { cookie });
      if (page.status !== 200) throw new Error(`${node.url}status answers ${page.status} with the session of ${nodes[0]!.url}`);
    }

    for (let i = 0; i < NODES; i++) loaders.push(new LoadChild());
    const headers = { cookie, accept: 'text/html' };
    const status = async (targets: Child[]) => {
      const results = await Promise.all(loaders.map((loader, i) => loader.round(new URL('/status', targets[i % targets.length]!.url), STATUS_ROUND_MS, headers)));
      const errors = results.reduce((sum, r) => sum + r.errors, 0);
      if (errors > 0) throw new Error(`${errors} status requests did not answer 200`);
      return results.reduce((sum, r) => sum + r.rps, 0);
    };
    process.stdout.write(`replicas: status page, ${NODES}×${CONNECTIONS_PER_LOADER} connections, ${STATUS_ROUNDS} alternating rounds of ${STATUS_ROUND_MS} ms\n`);
    const statusRates = await interleave(
      STATUS_ROUNDS,
      () => status(nodes),
      () => status([nodes[0]!]),
    );

    // Writers only after the status rounds: their outage BOOTs are on a row of their own, but their load is not.
    for (let i = 0; i < NODES; i++) writers.push(await Writer.start({ ...base, KEYWARD_HOME: mkdtempSync(join(root, `writer-${i + 1}-`)), KEYWARD_DEPLOYMENT: BENCH_DEPLOYMENT }));
    let conflicts = 0;
    const events = async (active: Writer[]) => {
      const results = await Promise.all(active.map((writer) => writer.round(EVENT_ROUND_MS)));
      conflicts += results.reduce((sum, r) => sum + r.conflicts, 0);
      return (results.reduce((sum, r) => sum + r.applied, 0) * 1000) / Math.max(...results.map((r) => r.ms));
    };
    process.stdout.write(`replicas: events, ${EVENT_ROUNDS} alternating rounds of ${EVENT_ROUND_MS} ms\n`);
    const eventRates = await interleave(
      EVENT_ROUNDS,
      () => events(writers),
      () => events([writers[0]!]),
    );
    process.stdout.write(`replicas: ${conflicts} events ended in a conflict the engine did not retry away (not counted)\n`);
    process.stdout.write(
      `replicas: samples (three | one): events ${fmt(eventRates.oursSamples)} | ${fmt(eventRates.baselineSamples)}; status ${fmt(statusRates.oursSamples)} | ${fmt(statusRates.baselineSamples)}\n`,
    );

    const result = (name: string, unit: string, r: { ours: number; baseline: number }) => ({ name, value: round(r.ours), unit, baseline: round(r.baseline), ratio: round(r.ours / r.baseline, 3) });
    return {
      bench: 'replicas',
      definitions: definitions(pgName),
      results: [
        result(`persisted events/s, ${NODES} nodes' engines at once (baseline: one node)`, 'events/s', eventRates),
        result(`status page throughput, load over ${NODES} nodes (baseline: all on one node)`, 'req/s', statusRates),
      ],
    };
  } finally {
    for (const writer of writers) writer.stop();
    for (const loader of loaders) loader.stop();
    for (const node of nodes.reverse()) await stopChild(node);
  }
}

/** A completed software-storage install with an administrator on the database, made through the lifecycle. */
async function install(home: string, env: NodeJS.ProcessEnv, adminPassword: string): Promise<void> {
  const runtime = new KeywardRuntime(loadConfig({ ...env, KEYWARD_HOME: home }));
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

/** test/bench/load-child.js, forked: one load round per message. */
class LoadChild {
  private readonly child = fork(join(__dirname, 'load-child.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });

  round(url: URL, durationMs: number, headers: Record<string, string>): Promise<LoadResult> {
    return ask(this.child, { url: url.toString(), connections: CONNECTIONS_PER_LOADER, durationMs, headers }, (message: { result?: LoadResult; error?: string }) => {
      if (!message.result) throw new Error(`the load generator failed: ${message.error}`);
      return message.result;
    });
  }

  stop(): void {
    if (this.child.connected) this.child.disconnect();
  }
}

/** test/bench/replicas-writer.js, forked: a node's engine sending events for a round per message. */
class Writer {
  private constructor(private readonly child: ChildProcess) {}

  static async start(env: NodeJS.ProcessEnv): Promise<Writer> {
    const child = fork(join(__dirname, 'replicas-writer.js'), [], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise<void>((resolve, reject) => {
      child.once('message', (message: { ready?: boolean; error?: string }) => (message.ready ? resolve() : reject(new Error(`a writer did not start: ${message.error}`))));
      child.once('exit', (code) => reject(new Error(`a writer exited (${code})`)));
    });
    return new Writer(child);
  }

  round(durationMs: number): Promise<{ applied: number; conflicts: number; ms: number }> {
    return ask(this.child, { durationMs }, (message: { applied?: number; conflicts?: number; ms?: number; error?: string }) => {
      if (message.applied === undefined) throw new Error(`a writer failed: ${message.error}`);
      return { applied: message.applied, conflicts: message.conflicts!, ms: message.ms! };
    });
  }

  stop(): void {
    if (this.child.connected) this.child.disconnect();
  }
}

/** Sends one message to a forked child and reads its one answer. */
function ask<M, T>(child: ChildProcess, message: Serializable, read: (answer: M) => T): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`a bench child exited (${code})`));
    child.once('exit', onExit);
    child.once('message', (answer: M) => {
      child.off('exit', onExit);
      try {
        resolve(read(answer));
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
    child.send(message);
  });
}

const round = (value: number, digits = 1) => Number(value.toFixed(digits));
const fmt = (values: number[]) => values.map((v) => Math.round(v)).join(' ');

if (require.main === module) void printBench('replicas', run);
