import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import knex, { Knex } from 'knex';
import type { DatabaseConfig } from '../../db/database';
import type { LifecycleEvent } from '../../machines/events';
import { loadConfig, PROJECT_ROOT, SOFTHSM_MODULE } from '../../server/config';
import { KeywardRuntime } from '../../server/runtime';
import { SecretBox } from '../../server/secret-box';
import { BenchReport, BenchResult, compareAsyncRates, median, printTable } from './measure';

const CLI = join(PROJECT_ROOT, 'dist', 'server', 'cli.js');
const BOOT_RUNS = 7;

/**
 * Persisted events per second through the lifecycle engine against raw knex transactions doing the
 * same writes on the same database in the same run (SQLite; PostgreSQL too when KEYWARD_BENCH_PG_URL
 * names a server on which the bench may create and drop a scratch database); and the time from
 * process start to operational (a real `keyward boot` on a completed SoftHSM install) against a bare
 * `node` start. Everything it creates lives in one temporary directory, removed at the end.
 */
export async function run(): Promise<BenchReport> {
  const root = mkdtempSync(join(tmpdir(), 'keyward-bench-events-'));
  try {
    const results: BenchResult[] = [];
    results.push(await eventRates('SQLite', root, { client: 'sqlite', filename: join(root, 'events.sqlite') }));
    const pgUrl = process.env.KEYWARD_BENCH_PG_URL;
    if (pgUrl) results.push(await withScratchPostgres(pgUrl, (config) => eventRates('PostgreSQL', root, config)));
    results.push(await startToOperational(root));
    return { bench: 'events', results };
  } finally {
    rmSync(root, { recursive: true, force: true });
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
      const startup = { ...probed, wizardCompleted: true, storageType: 'physical_hsm' as const, tokenPresent: false, kekPresent: null, dekAvailable: false, backupCopyPresent: true, tokenProblem: 'TOKEN_MISSING', probedAt: at };
      return { type: 'BOOT', at, startup };
    };
    const engineEvent = async () => {
      const result = await runtime.engine.send(outageBoot(), { source: 'bench', secrets: new SecretBox() });
      if (result.outcome !== 'applied' || !result.state.startsWith('outage')) throw new Error(`the bench event went to ${result.outcome} ${result.state}: ${result.message ?? ''}`);
      return 1;
    };
    await engineEvent();
    await assertOneLogRowPerEvent(runtime, engineEvent);

    const raw = await RawBaseline.beside(runtime.store.db, runtime.engine.deployment);
    // Many short alternating rounds: fsync latency drifts (WAL checkpoints, other processes' I/O),
    // and short rounds spread the drift evenly over both sides.
    const rates = await compareAsyncRates(engineEvent, () => raw.transaction(), 41, 50);
    return {
      name: `${engineName}: persisted events/s, engine (BOOT into outage, no effect) vs raw txn (read, CAS update, log insert)`,
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
      const row = await trx('lifecycle').where({ deployment: this.deployment }).first('revision');
      if (Number(row.revision) !== this.revision) throw new Error('raw baseline: revision mismatch');
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

/** A database of its own on the given PostgreSQL server, dropped afterwards. */
async function withScratchPostgres<T>(url: string, fn: (config: DatabaseConfig) => Promise<T>): Promise<T> {
  const name = `kw_bench_events_${randomBytes(4).toString('hex')}`;
  const admin = knex({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE ${name}`);
  try {
    const scratch = new URL(url);
    scratch.pathname = `/${name}`;
    return await fn({ client: 'pg', connectionString: scratch.toString() });
  } finally {
    await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.destroy();
  }
}

// --- process start to operational ---------------------------------------------------------------------

/**
 * `keyward boot` on a completed SoftHSM install, as a restart does: module loading, database open,
 * the probe (C_Initialize, login, unwrap of the DEK with the KEK), BOOT with VERSION_MATCH and
 * RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED, TLS from the database, operational, exit. Against
 * `node -e ""`. Runs interleaved, so drift hits both; medians.
 */
async function startToOperational(root: string): Promise<BenchResult> {
  const install = completedSoftHsmInstall(root);
  const bootOnce = async () => {
    const started = process.hrtime.bigint();
    const result = await runProcess([CLI, 'boot', '--json'], install.env);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (result.code !== 0 || JSON.parse(result.stdout).state !== 'operational') throw new Error(`keyward boot did not reach operational (exit ${result.code}): ${result.stdout}${result.stderr}`);
    return ms;
  };
  const bareOnce = async () => {
    const started = process.hrtime.bigint();
    const result = await runProcess(['-e', ''], process.env);
    if (result.code !== 0) throw new Error('node -e "" failed');
    return Number(process.hrtime.bigint() - started) / 1e6;
  };
  await bootOnce();
  await bareOnce();
  const ours: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < BOOT_RUNS; i++) {
    bare.push(await bareOnce());
    ours.push(await bootOnce());
  }
  const inspection = JSON.parse(cli(install.env, ['inspect', '--json', '--history', '0']).stdout) as { state: string; scenario: string; versionScenario: string };
  if (inspection.state !== 'operational' || inspection.scenario !== 'RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED' || inspection.versionScenario !== 'VERSION_MATCH') {
    throw new Error(`the timed boots were not VERSION_MATCH + RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED: ${JSON.stringify(inspection)}`);
  }
  const value = median(ours);
  const baseline = median(bare);
  return {
    name: `start to operational: keyward boot (SoftHSM, VERSION_MATCH, DEK cached) vs node -e "" (median of ${BOOT_RUNS})`,
    value,
    unit: 'ms',
    baseline,
    ratio: baseline / value,
  };
}

interface Install {
  env: NodeJS.ProcessEnv;
}

/** A SoftHSM install walked through the wizard by the CLI; PINs and passwords random, given in files. */
function completedSoftHsmInstall(root: string): Install {
  const home = mkdtempSync(join(root, 'install-'));
  writeSoftHsmConf(home);
  const env: NodeJS.ProcessEnv = { ...withoutKeywardSettings(process.env), KEYWARD_HOME: home, SOFTHSM2_CONF: join(home, 'softhsm2.conf'), KEYWARD_TLS_SANS: 'localhost,127.0.0.1' };
  const given = join(home, 'given');
  mkdirSync(given, { mode: 0o700 });
  let files = 0;
  const secretFile = () => {
    const path = join(given, `secret-${++files}`);
    writeFileSync(path, `${randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });
    return path;
  };
  const pin = secretFile();
  const steps: Array<[string, Record<string, unknown> | null, Record<string, string>]> = [
    ['SELECT_STORAGE', { storageType: 'softhsm' }, {}],
    ['SETUP_HSM', { hsmType: 'softhsm', modulePath: SOFTHSM_MODULE, label: 'Trustpoint-SoftHSM' }, { pin, soPin: secretFile() }],
    ['CHOOSE_FRESH', null, {}],
    ['GENERATE_TLS', { subjectAltNames: ['localhost', '127.0.0.1'] }, {}],
    ['APPLY_TLS', null, {}],
    ['SET_BACKUP_PASSWORD', null, { password: secretFile() }],
    ['SKIP_DEMO_DATA', null, {}],
    ['CREATE_ADMIN', { username: 'admin' }, { password: secretFile() }],
  ];
  cli(env, ['boot']);
  for (const [event, payload, secrets] of steps) {
    const args = ['send', event];
    if (payload) args.push('--payload', JSON.stringify(payload));
    for (const [name, path] of Object.entries(secrets)) args.push('--secret', `${name}=file:${path}`);
    cli(env, args);
  }
  // The wizard's own secrets are not needed any more; the user-PIN file keyward keeps stays.
  rmSync(given, { recursive: true, force: true });
  return { env };
}

function cli(env: NodeJS.ProcessEnv, args: string[]): { stdout: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) throw new Error(`keyward ${args.slice(0, 2).join(' ')} failed (exit ${result.status}): ${result.stderr}`);
  return { stdout: result.stdout };
}

function runProcess(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function writeSoftHsmConf(home: string): void {
  mkdirSync(join(home, 'tokens'), { recursive: true, mode: 0o700 });
  writeFileSync(join(home, 'softhsm2.conf'), `directories.tokendir = ${join(home, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
}

/** The caller's environment without keyward's own settings, so the bench's install is the one used. */
function withoutKeywardSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('KEYWARD_') && name !== 'SOFTHSM2_CONF' && name !== 'DATABASE_URL'));
}

if (require.main === module) {
  void run().then((report) => {
    printTable(report);
    process.stdout.write(`${JSON.stringify(report)}\n`);
  });
}
