import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../server/config';
import { drill } from '../../server/drill';
import { KeywardRuntime } from '../../server/runtime';
import { softHsmInstallInProcess } from './installs';
import { BenchReport, BenchResult, fitLine, median, scaled, printBench } from './measure';
import { rawBackup, rawRecover, rawRestore, sealDek } from './raw-archive';

/** Row counts of the line fits: per-row cost is the slope, fixed cost the intercept. */
const SIZES = scaled([1_000, 25_000, 50_000, 100_000], [200, 1_000, 2_000]);
const ROUNDS = scaled(3, 1);

const DEFINITIONS = [
  "backup: Argon2id of the passphrase (keyward's parameters, m=64 MiB t=3) + SQLite online backup of the same database through node sqlite3's " +
    "Database#backup (the sqlite3_backup API behind the CLI's .backup) + PRAGMA integrity_check of the copy + SHA-256 and AES-256-GCM (node:crypto) " +
    "of the copy streamed to one file + fsync. keyward's archive also holds the TLS files, the configuration and the log (an SQLite archive holds the database file alone).",
  'restore: Argon2id + AES-256-GCM decrypt of that file + SHA-256 check + the database file written and fsynced (no integrity_check: keyward ' +
    "runs none on a restored file, whose bytes the archive's hash proves to be the backup's checked copy). " +
    'keyward\'s restore step: the drill\'s "restore onto a scratch store" (extract while verifying, migrate, swap in, and the BOOT after it).',
  'restore + auto-restore: the raw restore, then the DEK recovered raw: Argon2id of the backup password + AES-256-GCM open of the DEK, a fresh SoftHSM ' +
    "token by pkcs11-tool (init-token, init-pin), a KEK generated with keyward's template, the DEK wrapped (C_WrapKey), then every secret value of the " +
    'restored database opened with the DEK (node sqlite3, 500 rows at a time; AES-256-GCM with its associated data), as keyward checks them all. ' +
    "keyward: the drill's RTO (restore, boot, auto-restore with the backup password, every secret value checked, canary, log chain audit).",
  `per-row cost = slope and fixed cost = intercept of a least-squares line through the medians of ${ROUNDS} interleaved rounds at ${SIZES.join(', ')} encrypted device rows (2 secrets each); ` +
    "a slope's ratio is the baseline's slope over keyward's slope plus one standard error of its fit (an upper bound of keyward's per-row cost; printed beside it).",
];

interface Sample {
  rows: number;
  databaseMiB: number;
  backup: { ours: number; raw: number };
  restore: { ours: number; raw: number };
  rto: { ours: number; raw: number };
}

export async function run(): Promise<BenchReport> {
  const samples: Sample[] = [];
  for (const rows of SIZES) {
    const sample = await measure(rows);
    samples.push(sample);
    process.stdout.write(
      `${rows} rows, ${sample.databaseMiB.toFixed(1)} MiB: backup ${sample.backup.ours.toFixed(2)} s (raw ${sample.backup.raw.toFixed(2)}), ` +
        `restore ${sample.restore.ours.toFixed(2)} s (raw ${sample.restore.raw.toFixed(2)}), restore + auto-restore ${sample.rto.ours.toFixed(2)} s (raw ${sample.rto.raw.toFixed(2)})\n`,
    );
  }
  const results: BenchResult[] = [];
  for (const [key, label] of [
    ['restore', 'restore'],
    ['rto', 'restore + auto-restore'],
  ] as const) {
    const ours = fitLine(samples.map((s) => ({ x: s.rows, y: s[key].ours })));
    const raw = fitLine(samples.map((s) => ({ x: s.rows, y: s[key].raw })));
    const perThousand = (fit: typeof ours) => `${(fit.slope * 1e6).toFixed(2)} ± ${(fit.slopeError * 1e6).toFixed(2)} ms`;
    process.stdout.write(`${label}: per 1,000 rows keyward ${perThousand(ours)}, baseline ${perThousand(raw)} (slope ± standard error)\n`);
    results.push(
      // Against keyward's slope plus its standard error: where the per-row cost is within the noise of
      // the fixed cost, the slope alone can come out near zero or below it.
      { name: `${label}: per 1,000 rows (slope)`, value: ours.slope * 1e6, unit: 'ms', baseline: raw.slope * 1e6, ratio: raw.slope / Math.max(ours.slope + ours.slopeError, ours.slopeError) },
      { name: `${label}: fixed cost (intercept)`, value: ours.intercept, unit: 's', baseline: raw.intercept, ratio: raw.intercept / ours.intercept },
    );
  }
  const largest = samples[samples.length - 1]!;
  results.push({
    name: `backup, ${largest.rows.toLocaleString('en-US')} rows (${largest.databaseMiB.toFixed(1)} MiB database)`,
    value: largest.databaseMiB / largest.backup.ours,
    unit: 'MiB/s',
    baseline: largest.databaseMiB / largest.backup.raw,
    ratio: largest.backup.raw / largest.backup.ours,
  });
  return { bench: 'restore', definitions: DEFINITIONS, results };
}

/** One install with `rows` devices; keyward's and the raw backup and restore in alternating rounds; medians. */
async function measure(rows: number): Promise<Sample> {
  const home = mkdtempSync(join(tmpdir(), `keyward-bench-restore-${rows}-`));
  const scratch = mkdtempSync(join(tmpdir(), `keyward-bench-restore-raw-`));
  try {
    const { runtime, env, backupPassword } = await softHsmInstallInProcess(home);
    let dek: Buffer;
    try {
      await insertDevices(runtime, rows);
      dek = Buffer.from(runtime.keyring.currentKey());
      await runtime.store.db.raw('PRAGMA wal_checkpoint(TRUNCATE)');
    } finally {
      await runtime.close();
    }
    const databaseFile = join(home, 'keyward.sqlite');
    const databaseMiB = statSync(databaseFile).size / 1048576;
    const sealedDek = await sealDek(dek, backupPassword);
    dek.fill(0);
    const passphrase = `Pp-${randomBytes(18).toString('base64url')}`;

    const ours = { backup: [] as number[], restore: [] as number[], rto: [] as number[] };
    const raw = { backup: [] as number[], restore: [] as number[], rto: [] as number[] };
    let n = 0;
    const keywardRound = async () => {
      const archive = join(scratch, `keyward-${++n}.kwbak`);
      const source = new KeywardRuntime(loadConfig(env));
      try {
        const boot = await source.boot('bench');
        if (boot.state !== 'operational') throw new Error(`the install booted to ${boot.state}`);
        const t = process.hrtime.bigint();
        await source.backup(archive, passphrase);
        ours.backup.push(seconds(t));
      } finally {
        await source.close();
      }
      const report = await drill(archive, passphrase, backupPassword);
      rmSync(archive, { force: true });
      if (!report.ok) throw new Error(`the drill failed: ${JSON.stringify(report.steps)}`);
      ours.restore.push(report.steps[0]!.ms / 1000);
      ours.rto.push(report.rtoSeconds);
    };
    const rawRound = async () => {
      const archive = join(scratch, `raw-${++n}.bin`);
      const restored = join(scratch, `raw-${n}.sqlite`);
      let t = process.hrtime.bigint();
      await rawBackup(databaseFile, archive, passphrase);
      raw.backup.push(seconds(t));
      t = process.hrtime.bigint();
      await rawRestore(archive, restored, passphrase);
      const restoreSeconds = seconds(t);
      const opened = await rawRecover(scratch, sealedDek, backupPassword, restored);
      if (opened < rows * 2) throw new Error(`the raw auto-restore opened ${opened} values of ${rows * 2}`);
      raw.restore.push(restoreSeconds);
      raw.rto.push(seconds(t));
      rmSync(archive, { force: true });
      rmSync(restored, { force: true });
    };
    for (let i = 0; i < ROUNDS; i++) {
      if (i % 2 === 0) {
        await rawRound();
        await keywardRound();
      } else {
        await keywardRound();
        await rawRound();
      }
    }
    const pair = (key: 'backup' | 'restore' | 'rto') => ({ ours: median(ours[key]), raw: median(raw[key]) });
    return { rows, databaseMiB, backup: pair('backup'), restore: pair('restore'), rto: pair('rto') };
  } finally {
    rmSync(home, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
}

function seconds(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** Devices with two encrypted secrets each, sealed as the repository does, inserted in batches. */
export async function insertDevices(runtime: KeywardRuntime, count: number): Promise<void> {
  const codec = await runtime.store.secrets.codec();
  const db = runtime.store.db;
  const now = new Date().toISOString();
  await db.transaction(async (trx) => {
    for (let start = 0; start < count; start += 200) {
      const batch = [];
      for (let i = start; i < Math.min(count, start + 200); i++) {
        batch.push({
          name: `bench-device-${i}`,
          est_password: codec.seal(randomBytes(24).toString('base64'), { table: 'devices', column: 'est_password' }),
          cmp_shared_secret: codec.seal(randomBytes(24).toString('base64'), { table: 'devices', column: 'cmp_shared_secret' }),
          created_at: now,
        });
      }
      await trx('devices').insert(batch);
    }
    await runtime.store.keyMaterial.addEncryptions(runtime.keyring.current!, count * 2, trx);
  });
}

if (require.main === module) void printBench('restore', run);
