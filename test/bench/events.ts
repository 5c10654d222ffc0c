import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import knex, { Knex } from 'knex';
import { type DatabaseConfig, rawRows } from '../../db/database';
import type { LifecycleEvent } from '../../machines/events';
import { tagsOfState } from '../../machines/state-names';
import { loadConfig, PROJECT_ROOT } from '../../server/config';
import { KeywardRuntime } from '../../server/runtime';
import { SecretBox } from '../../server/secret-box';
import { writeSoftHsmConf } from './installs';
import { BenchReport, BenchResult, compareAsyncRates, scaled, printBench } from './measure';
import type { LifecycleRow } from '../../db/rows';

/** Many short alternating rounds: fsync latency drifts (WAL checkpoints, other processes' I/O). */
const ROUNDS = scaled(41, 5);
const ROUND_MS = scaled(50, 40);
const PG_CLUSTER = join(PROJECT_ROOT, 'scripts', 'pg-cluster.sh');

const DEFINITIONS = [
  'raw txn: one knex transaction on the same database and connection pool as the engine: read the lifecycle row, update it under a revision ' +
    "compare-and-swap with a snapshot of the engine's size, insert one transition_log row copied from the engine's last one (same columns, same sizes), commit.",
  'PostgreSQL runs twice, named by its own SHOW fsync: a private cluster as a deployment runs it (fsync=on, synchronous_commit=on, the defaults) ' +
    "and the test suite's cluster (fsync=off), both from scripts/pg-cluster.sh; KEYWARD_BENCH_PG_URL adds a server of your own. SQLite as keyward opens it.",
];

/**
 * Persisted events per second through the lifecycle engine against raw knex transactions doing the
 * same writes on the same database in the same run: SQLite, and PostgreSQL with fsync on (as deployed)
 * and off (as in the tests), each on a private cluster; KEYWARD_BENCH_PG_URL adds a server on which
 * the bench may create and drop a scratch database. Everything it creates is removed at the end.
 */
export async function run(): Promise<BenchReport> {
  const root = mkdtempSync(join(tmpdir(), 'keyward-bench-events-'));
  try {
    const results: BenchResult[] = [];
    results.push(await eventRates('SQLite', root, { client: 'sqlite', filename: join(root, 'events.sqlite') }));
    for (const fsync of ['on', 'off'] as const) {
      results.push(await withPrivateCluster(fsync, (url) => withScratchPostgres(url, (config, name) => eventRates(name, root, config))));
    }
    const pgUrl = process.env.KEYWARD_BENCH_PG_URL;
    if (pgUrl) results.push(await withScratchPostgres(pgUrl, (config, name) => eventRates(`${name}, KEYWARD_BENCH_PG_URL`, root, config)));
    return { bench: 'events', definitions: DEFINITIONS, results };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * A private cluster from scripts/pg-cluster.sh with fsync as given, stopped and removed afterwards.
 * Its directory sits directly in the temporary directory: run as root, the server runs as postgres,
 * which could not enter the bench's private directory.
 */
export async function withPrivateCluster<T>(fsync: 'on' | 'off', fn: (url: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), `keyward-bench-pg-fsync-${fsync}-`));
  try {
    const url = execFileSync('bash', [PG_CLUSTER, 'start', dir], { env: { ...process.env, KEYWARD_PG_FSYNC: fsync }, encoding: 'utf8' }).trim();
    return await fn(url);
  } finally {
    execFileSync('bash', [PG_CLUSTER, 'stop', dir], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  }
}

// --- events through the engine vs raw transactions --------------------------------------------------

/**
 * The event: BOOT whose probe says "physical HSM, wizard completed, token unreachable". It is what
 * `keyward start` sends every KEYWARD_OUTAGE_RETRY_SECONDS during an outage, it is accepted from any
 * state, and its transition (startup → VERSION_MATCH → restore classification → outage) invokes no
 * effect, so the engine's own cost is all that is measured: load the snapshot, the pure transition,
 * one transaction with the CAS update of the snapshot and one chained log row. No wizard step can be
 * repeated without an effect, and the one other effect-free repeatable event (SUBMIT_BACKUP_PASSWORD
 * during a lockout) needs wrong passwords against a real backup copy first. The probe itself (which
 * talks to the HSM) is not part of the figure.
 */
async function eventRates(engineName: string, root: string, database: DatabaseConfig): Promise<BenchResult> {
  const home = mkdtempSync(join(root, 'engine-'));
  writeSoftHsmConf(home);
  const config = { ...loadConfig({ KEYWARD_HOME: home, SOFTHSM2_CONF: join(home, 'softhsm2.conf'), KEYWARD_TLS_SANS: 'localhost,127.0.0.1' }), database };
  const runtime = new KeywardRuntime(config);
  try {
    // A real first start (schema, version row, TLS credential), then a real restart, whose probe of
    // the initialized database the bench event reuses with the HSM fields of an outage.
    for (const source of ['bench-first-start', 'bench-restart']) {
      const boot = await runtime.boot(source);
      if (boot.outcome !== 'applied') throw new Error(`BOOT (${source}) was ${boot.outcome}: ${boot.message ?? ''}`);
    }
    const probed = (await runtime.engine.load()).snapshot.context.startup!;
    if (!probed.dbInitialized || probed.dbVersion !== config.appVersion) throw new Error('the restart did not probe an initialized database of this version');
    const outageBoot = (): LifecycleEvent => {
      const at = new Date().toISOString();
      const startup = {
        ...probed,
        wizardCompleted: true,
        storageType: 'physical_hsm' as const,
        tokenPresent: false,
        kekPresent: null,
        dekAvailable: false,
        backupCopyPresent: true,
        tokenProblem: 'TOKEN_MISSING',
        probedAt: at,
      };
      return { type: 'BOOT', at, startup };
    };
    const engineEvent = async () => {
      const result = await runtime.engine.send(outageBoot(), { source: 'bench', secrets: new SecretBox() });
      if (result.outcome !== 'applied' || !tagsOfState(result.state).has('outage')) throw new Error(`the bench event went to ${result.outcome} ${result.state}: ${result.message ?? ''}`);
      return 1;
    };
    await engineEvent();
    await assertOneLogRowPerEvent(runtime, engineEvent);

    const raw = await RawBaseline.beside(runtime.store.db, runtime.engine.deployment);
    const rates = await compareAsyncRates(engineEvent, () => raw.transaction(), ROUNDS, ROUND_MS);
    return {
      name: `${engineName}: persisted events/s (engine: BOOT into outage, no effect)`,
      value: rates.ours,
      unit: 'events/s',
      baseline: rates.baseline,
      ratio: rates.ours / rates.baseline,
    };
  } finally {
    await runtime.close();
  }
}

/** The measure is honest only if one engine event is exactly one commit with one log row. */
async function assertOneLogRowPerEvent(runtime: KeywardRuntime, event: () => Promise<number>): Promise<void> {
  const count = async () => Number((await runtime.store.db('transition_log').count({ n: '*' }).first())!.n);
  const before = await count();
  const revision = (await runtime.engine.load()).revision!;
  await event();
  const after = await count();
  if (after - before !== 1 || (await runtime.engine.load()).revision !== revision + 1) throw new Error('a bench event did not write exactly one snapshot and one log row');
}

/**
 * The same writes without keyward: one transaction that reads the lifecycle row, updates it with a
 * snapshot of the engine's size under a revision compare-and-swap, and inserts one transition_log
 * row copied from the engine's last one (same columns, same sizes), on a deployment row of its own.
 */
class RawBaseline {
  private revision = 1;

  private constructor(
    private readonly db: Knex,
    private readonly deployment: string,
    private readonly lifecycle: Record<string, unknown>,
    private readonly logRow: Record<string, unknown>,
  ) {}

  static async beside(db: Knex, engineDeployment: string): Promise<RawBaseline> {
    const { deployment: _d, revision: _r, ...lifecycle } = (await db('lifecycle').where({ deployment: engineDeployment }).first()) as Record<string, unknown>;
    const { id: _i, deployment: _ld, revision: _lr, ...logRow } = (await db('transition_log').where({ deployment: engineDeployment }).orderBy('revision', 'desc').first()) as Record<string, unknown>;
    const deployment = `raw-baseline-${randomBytes(4).toString('hex')}`;
    await db('lifecycle').insert({ deployment, revision: 1, ...lifecycle });
    return new RawBaseline(db, deployment, lifecycle, logRow);
  }

  async transaction(): Promise<number> {
    const next = this.revision + 1;
    await this.db.transaction(async (trx) => {
      const row = await trx<LifecycleRow>('lifecycle').where({ deployment: this.deployment }).first('revision');
      if (Number(row?.revision) !== this.revision) throw new Error('raw baseline: revision mismatch');
      const changed = await trx('lifecycle')
        .where({ deployment: this.deployment, revision: this.revision })
        .update({ revision: next, snapshot: this.lifecycle.snapshot, state: this.lifecycle.state, updated_at: new Date().toISOString() });
      if (changed !== 1) throw new Error('raw baseline: compare-and-swap failed');
      await trx('transition_log').insert({ ...this.logRow, deployment: this.deployment, revision: next, created_at: new Date().toISOString() });
    });
    this.revision = next;
    return 1;
  }
}

/** A database of its own on the given PostgreSQL server, dropped afterwards; named by the server's fsync setting. */
export async function withScratchPostgres<T>(url: string, fn: (config: DatabaseConfig, engineName: string) => Promise<T>): Promise<T> {
  const name = `kw_bench_events_${randomBytes(4).toString('hex')}`;
  const admin = knex({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE ${name}`);
  try {
    const [settings] = (await rawRows<{ fsync: string; sync: string }>(admin, "SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sync")) as [
      { fsync: string; sync: string },
    ];
    const scratch = new URL(url);
    scratch.pathname = `/${name}`;
    return await fn({ client: 'pg', connectionString: scratch.toString() }, `PostgreSQL fsync=${settings.fsync} synchronous_commit=${settings.sync}`);
  } finally {
    await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.destroy();
  }
}

if (require.main === module) void printBench('events', run);
