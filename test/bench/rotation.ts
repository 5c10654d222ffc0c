import { createCipheriv, createDecipheriv, randomBytes, randomFillSync } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import knex, { type Knex } from 'knex';
import type { KeywardRuntime } from '../../server/runtime';
import { decryptPerDocs } from '../support/field-format';
import { WebClient } from '../web/support/web-client';
import { type Child, LoadProcess, startChild, stopChild } from './http';
import { CLI, softHsmInstallInProcess } from './installs';
import type { LoadResult } from './load';
import { BenchReport, BenchResult, interleave, median, printBench, scaled } from './measure';
import { insertDevices } from './restore';

/**
 * `npm run bench -- rotation`: (a) values re-encrypted per second by keyward's DEK rotation job
 * (db/dek-reencryption.ts, run() on a populated store) against a raw loop doing the same batches in the
 * same run; (b) the p99 latency of an administrator's status page while the job runs, against the
 * same load without it.
 */
const VALUES = scaled(20_000, 4_000);
const ROUNDS = scaled(5, 2);
const BATCH = 500;
const LOAD_ROUNDS = scaled(5, 2);
const LOAD_MS = scaled(3000, 1500);
const CONNECTIONS = 4;

/** docs/formats.md §4: every secret column, in the order the job walks them. */
const COLUMNS: Array<[string, string[]]> = [
  ['devices', ['est_password', 'cmp_shared_secret']],
  ['credentials', ['private_key']],
  ['tls_server_credentials', ['private_key']],
  ['custody_canary', ['value']],
  ['log_chain_keys', ['sealed_key']],
];

const PRAGMAS = ['PRAGMA foreign_keys = ON', 'PRAGMA journal_mode = WAL', 'PRAGMA busy_timeout = 10000', 'PRAGMA synchronous = FULL', 'PRAGMA secure_delete = ON'];

const DEFINITIONS = [
  `re-encryption: keyward = one DekReencryption.run() after a DEK was added and promoted (not timed), on an install with ${(VALUES / 2).toLocaleString('en-US')} devices ` +
    '(two sealed secrets each) plus its TLS key and canary; it counts the values to move before it starts and checks that none is left when done (two scans), ' +
    "both inside the figure. Raw = the same database copied before the first round, through knex + sqlite3 with keyward's PRAGMAs (" +
    `${PRAGMAS.map((p) => p.replace('PRAGMA ', '')).join(', ')}; one connection): per table of docs/formats.md §4, ${BATCH} rows read in id order from a cursor ` +
    'inside a transaction; each value not under the new key id opened (AES-256-GCM, node:crypto, associated data version||keyId||"table.column") and sealed ' +
    "under the new DEK with the same layout (u32 length, value, 0-15 zero bytes; nonce and pad length from a 3,328-byte randomFillSync pool, as keyward's); one " +
    'UPDATE per row with the old values as compare-and-swap; per batch the GCM counter incremented in key_material and the cursor and count written to ' +
    'dek_rotation_jobs; commit. No scan before or after. Rate = values moved / seconds; medians of interleaved rounds. Afterwards every value of both ' +
    "databases is checked to be under its side's last key and the same plaintext on both (keyward's side opened by keyward, the raw side by test/support/field-format.ts).",
  `status page p99: an administrator's GET /status (session cookie) on \`keyward start\` serving that install, ${CONNECTIONS} keep-alive connections from a forked ` +
    "load generator; 'with the job' = DEK rotations (add, promote, run()) back to back in the bench process, a second process beside the server, " +
    'as `keyward rotate dek` runs; baseline = the same load with the bench process idle. Ratio = p99 without / p99 with (1 = no effect).',
];

export async function run(): Promise<BenchReport> {
  const home = mkdtempSync(join(tmpdir(), 'keyward-bench-rotation-'));
  let runtime: KeywardRuntime | null = null;
  let server: Child | null = null;
  const load = new LoadProcess();
  try {
    const install = await softHsmInstallInProcess(home);
    runtime = install.runtime;
    await insertDevices(runtime, VALUES / 2);
    await runtime.custody.ensureDek();
    const values = VALUES + 2; // the TLS server key and the canary are secret values too
    await runtime.store.db.raw('PRAGMA wal_checkpoint(TRUNCATE)');
    const rawFile = join(home, 'raw-baseline.sqlite');
    copyFileSync(join(home, 'keyward.sqlite'), rawFile);
    const raw = new RawReencryption(rawFile, runtime.keyring.current!, Buffer.from(runtime.keyring.currentKey()));

    const ours = async () => {
      const keyId = await addAndPromote(runtime!);
      const started = process.hrtime.bigint();
      const result = await runtime!.store.reencryption.run(keyId, { batchSize: BATCH });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (result.values !== values) throw new Error(`keyward's job moved ${result.values} values, not ${values}`);
      return values / seconds;
    };
    const baseline = async () => {
      const started = process.hrtime.bigint();
      const moved = await raw.rotate();
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (moved !== values) throw new Error(`the raw loop moved ${moved} values, not ${values}`);
      return values / seconds;
    };
    const rates = await interleave(ROUNDS, ours, baseline);
    await sameValues(runtime, raw);
    await raw.close();
    const scan = await timeScan(runtime);
    process.stdout.write(
      `re-encryption: keyward ${rates.oursSamples.map((r) => Math.round(r)).join(', ')} values/s; raw ${rates.baselineSamples.map((r) => Math.round(r)).join(', ')} values/s; ` +
        `one scan of every secret value (as the job runs twice) ${scan.toFixed(2)} s\n`,
    );

    const adminPassword = install.adminPassword;
    server = await startChild([CLI, 'start'], { ...install.env, KEYWARD_PORT: '0', KEYWARD_HOST: '127.0.0.1' }, join(home, 'server.log'), /serving (https:\/\/127\.0\.0\.1:\d+\/)/);
    const client = new WebClient(server.url);
    const login = await client.postForm('/login', '/login', { username: 'admin', password: adminPassword });
    if (login.status !== 303) throw new Error(`the bench could not log in: HTTP ${login.status}`);
    const cookie = [...client.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if ((await client.get('/status')).status !== 200) throw new Error('the status page does not answer 200');
    const target = { url: new URL('/status', server.url), headers: { cookie, accept: 'text/html' } };
    const latency = await latencyDuringJob(runtime, load, target);

    const results: BenchResult[] = [
      { name: `re-encryption, ${values.toLocaleString('en-US')} values`, value: rates.ours, unit: 'values/s', baseline: rates.baseline, ratio: rates.ours / rates.baseline },
      {
        name: 'status page p99 with the job running (baseline: without)',
        value: latency.withJob.p99,
        unit: 'ms',
        baseline: latency.without.p99,
        ratio: latency.without.p99 / latency.withJob.p99,
      },
    ];
    process.stdout.write(
      `status page: p50 ${latency.without.p50.toFixed(1)} ms → ${latency.withJob.p50.toFixed(1)} ms with the job; ` +
        `${Math.round(latency.without.rps)} → ${Math.round(latency.withJob.rps)} req/s; job rate while serving ${Math.round(latency.jobRate)} values/s\n`,
    );
    return { bench: 'rotation', definitions: DEFINITIONS, results };
  } finally {
    load.stop();
    if (server) await stopChild(server);
    await runtime?.close();
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * Both sides did the work: every value of either database is under its side's last key, and the raw
 * side's (opened by the reader written from docs/formats.md) equal keyward's (opened by keyward).
 */
async function sameValues(runtime: KeywardRuntime, raw: RawReencryption): Promise<void> {
  const codec = await runtime.store.secrets.codec();
  const current = runtime.keyring.current!;
  for (const [table, columns] of COLUMNS) {
    const ours = await runtime.store
      .db(table)
      .select<Array<{ id: number } & Record<string, Buffer | null>>>('id', ...columns)
      .orderBy('id');
    const theirs = new Map((await raw.rows(table, columns)).map((row) => [Number(row.id), row]));
    for (const row of ours) {
      for (const column of columns) {
        const value = row[column] ?? null;
        const other = theirs.get(Number(row.id))?.[column] ?? null;
        if (value === null && other === null) continue;
        if (value === null || other === null || value.toString('hex', 1, 9) !== current) throw new Error(`${table}.${column} #${row.id}: not moved by keyward's job`);
        if (codec.open(value, { table, column }) !== raw.openPerDocs(other, table, column)) throw new Error(`${table}.${column} #${row.id}: the two sides hold different values`);
      }
    }
  }
}

/** A new DEK added (wrapped by the token's KEK, sealed to the backup key) and promoted, as ROTATE_DEK's first two steps. */
async function addAndPromote(runtime: KeywardRuntime): Promise<string> {
  const { keyId } = await runtime.custody.hierarchy.addDek(await runtime.custody.wrapper());
  await runtime.custody.hierarchy.promote(keyId);
  return keyId;
}

async function timeScan(runtime: KeywardRuntime): Promise<number> {
  const started = process.hrtime.bigint();
  await runtime.store.reencryption.countValuesByKeyId();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/**
 * Rounds of the status page's load, alternately idle and with DEK rotations running back to back in
 * this process; each side's p99, p50 and throughput are the medians over its rounds.
 */
async function latencyDuringJob(
  runtime: KeywardRuntime,
  load: LoadProcess,
  target: { url: URL; headers: Record<string, string> },
): Promise<{ without: LoadResult; withJob: LoadResult; jobRate: number }> {
  const without: LoadResult[] = [];
  const withJob: LoadResult[] = [];
  const jobRates: number[] = [];
  const jobRound = async () => {
    let running = true;
    let moved = 0;
    const started = process.hrtime.bigint();
    const jobs = (async () => {
      while (running) moved += (await runtime.store.reencryption.run(await addAndPromote(runtime), { batchSize: BATCH })).values;
    })();
    // The first job's opening scan is under way before the load starts.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const result = await load.round(target, LOAD_MS);
    running = false;
    await jobs;
    jobRates.push(moved / (Number(process.hrtime.bigint() - started) / 1e9));
    return result;
  };
  await load.round(target, 500);
  for (let i = 0; i < LOAD_ROUNDS; i++) {
    if (i % 2 === 0) {
      without.push(await load.round(target, LOAD_MS));
      withJob.push(await jobRound());
    } else {
      withJob.push(await jobRound());
      without.push(await load.round(target, LOAD_MS));
    }
  }
  const summary = (rounds: LoadResult[], side: string): LoadResult => {
    const errors = rounds.reduce((sum, r) => sum + r.errors, 0);
    if (errors > 0) throw new Error(`status page ${side}: ${errors} requests did not answer 200`);
    return { ...rounds[0]!, p50: median(rounds.map((r) => r.p50)), p99: median(rounds.map((r) => r.p99)), rps: median(rounds.map((r) => r.rps)) };
  };
  return { without: summary(without, 'without the job'), withJob: summary(withJob, 'with the job'), jobRate: median(jobRates) };
}

/**
 * The raw loop: the job's batches, without keyward. It rotates its own copy of the database to a
 * fresh key every round, starting from the DEK the values were sealed with.
 */
class RawReencryption {
  private readonly db: Knex;
  private readonly keys = new Map<string, Buffer>();
  private readonly counterKeyId: string;
  private readonly pool = Buffer.alloc(13 * 256);
  private poolOffset = this.pool.length;
  private readonly aads = new Map<string, Buffer>();
  private last: { keyId: Buffer; key: Buffer } | null = null;

  constructor(file: string, keyId: string, key: Buffer) {
    this.db = knex({
      client: 'sqlite3',
      connection: { filename: file },
      useNullAsDefault: true,
      pool: {
        min: 1,
        max: 1,
        afterCreate(connection: { run(sql: string, cb: (error: Error | null) => void): void }, done: (error: Error | null, connection: unknown) => void) {
          const next = (i: number): void => (i === PRAGMAS.length ? done(null, connection) : connection.run(PRAGMAS[i]!, (error) => (error ? done(error, connection) : next(i + 1))));
          next(0);
        },
      },
    });
    this.keys.set(keyId, key);
    this.counterKeyId = keyId;
  }

  async rotate(): Promise<number> {
    const target = { keyId: randomBytes(8), key: randomBytes(32) };
    this.keys.set(target.keyId.toString('hex'), target.key);
    const at = new Date().toISOString();
    const [inserted] = await this.db('dek_rotation_jobs')
      .insert({ target_key_id: target.keyId.toString('hex'), cursor_table: null, cursor_id: 0, values_done: 0, values_total: 0, started_at: at, updated_at: at, finished_at: null })
      .returning<Array<{ id: number } | number>>('id');
    const jobId = typeof inserted === 'object' ? inserted.id : inserted!;
    let done = 0;
    for (let t = 0; t < COLUMNS.length; t++) {
      const [table, columns] = COLUMNS[t]!;
      for (let cursor = 0; ;) {
        const batch = await this.db.transaction(async (trx) => {
          const rows = await trx(table)
            .select<Array<{ id: number } & Record<string, Buffer | null>>>('id', ...columns)
            .where('id', '>', cursor)
            .orderBy('id', 'asc')
            .limit(BATCH);
          let sealed = 0;
          for (const row of rows) {
            const update: Record<string, Buffer> = {};
            let query = trx(table).where({ id: row.id });
            for (const column of columns) {
              const value = row[column] ?? null;
              if (value === null || value.compare(target.keyId, 0, 8, 1, 9) === 0) continue;
              update[column] = this.seal(this.open(value, table, column), target, table, column);
              query = query.andWhere(column, value);
              sealed += 1;
            }
            if (Object.keys(update).length > 0 && (await query.update(update)) === 1) done += Object.keys(update).length;
          }
          await trx('key_material').where({ dek_key_id: this.counterKeyId, state: 'primary' }).increment('gcm_encryptions', sealed);
          const full = rows.length === BATCH;
          const next = { cursor_table: full ? table : (COLUMNS[t + 1]?.[0] ?? null), cursor_id: full ? Number(rows[rows.length - 1]!.id) : 0 };
          await trx('dek_rotation_jobs')
            .where({ id: jobId })
            .update({ ...next, values_done: done, updated_at: new Date().toISOString() });
          return next;
        });
        if (batch.cursor_table !== table) break;
        cursor = batch.cursor_id;
      }
    }
    await this.db('dek_rotation_jobs').where({ id: jobId }).update({ finished_at: new Date().toISOString() });
    this.last = target;
    return done;
  }

  async rows(table: string, columns: string[]): Promise<Array<{ id: number } & Record<string, Buffer | null>>> {
    return this.db(table).select<Array<{ id: number } & Record<string, Buffer | null>>>('id', ...columns);
  }

  /** A value of this side, opened with its last key by the reader written from docs/formats.md alone. */
  openPerDocs(value: Buffer, table: string, column: string): string {
    if (!this.last || value.compare(this.last.keyId, 0, 8, 1, 9) !== 0) throw new Error(`${table}.${column}: not moved by the raw loop`);
    return decryptPerDocs(value, this.last.key, table, column).value;
  }

  /** version || keyId || "table.column", kept per key id and column: a handful of distinct values. */
  private aad(header: Buffer, table: string, column: string): Buffer {
    const name = `${header.toString('hex', 0, 9)}${table}.${column}`;
    let aad = this.aads.get(name);
    if (!aad) this.aads.set(name, (aad = Buffer.concat([header.subarray(0, 9), Buffer.from(`${table}.${column}`, 'utf8')])));
    return aad;
  }

  /** docs/formats.md §4: version(1) keyId(8) nonce(12) GCM(u32 len, value, pad) tag(16); the value's bytes. */
  private open(value: Buffer, table: string, column: string): Buffer {
    const key = this.keys.get(value.toString('hex', 1, 9));
    if (!key) throw new Error(`raw loop: no key for ${value.toString('hex', 1, 9)}`);
    const decipher = createDecipheriv('aes-256-gcm', key, value.subarray(9, 21));
    decipher.setAAD(this.aad(value, table, column));
    decipher.setAuthTag(value.subarray(value.length - 16));
    const body = decipher.update(value.subarray(21, value.length - 16));
    decipher.final();
    return body.subarray(4, 4 + body.readUInt32BE(0));
  }

  /** Written in place into the output, as keyward's writer does. */
  private seal(plaintext: Buffer, target: { keyId: Buffer; key: Buffer }, table: string, column: string): Buffer {
    if (this.poolOffset >= this.pool.length) {
      randomFillSync(this.pool);
      this.poolOffset = 0;
    }
    const random = this.pool.subarray(this.poolOffset, (this.poolOffset += 13));
    const bodyLength = 4 + plaintext.length + (random[12]! % 16);
    const out = Buffer.allocUnsafe(21 + bodyLength + 16);
    out[0] = 1;
    target.keyId.copy(out, 1);
    random.copy(out, 9, 0, 12);
    const body = Buffer.alloc(bodyLength);
    body.writeUInt32BE(plaintext.length, 0);
    plaintext.copy(body, 4);
    const cipher = createCipheriv('aes-256-gcm', target.key, out.subarray(9, 21));
    cipher.setAAD(this.aad(out, table, column));
    const written = cipher.update(body).copy(out, 21);
    cipher.final();
    cipher.getAuthTag().copy(out, 21 + written);
    return out;
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

if (require.main === module) void printBench('rotation', run);
