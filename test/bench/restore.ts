import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../server/config';
import { drill } from '../../server/drill';
import { KeywardRuntime } from '../../server/runtime';
import { BenchReport, median } from './measure';

const MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/**
 * Restore plus auto-restore for 1,000 and 100,000 encrypted rows: with envelope encryption only the
 * DEK is recovered and re-wrapped, so the time should stay nearly flat (target: 100k/1k under 3).
 * And backup throughput against a plain copy of the database file, in the same run.
 */
export async function run(): Promise<BenchReport> {
  const small = await measure(1_000);
  const large = await measure(100_000);
  const flat = large.restoreSeconds / small.restoreSeconds;
  process.stdout.write(`\n100k/1k restore time: ${flat.toFixed(2)} (target under 3)\n`);
  return {
    bench: 'restore',
    results: [
      { name: 'restore + auto-restore, 1,000 encrypted rows (the baseline)', value: small.restoreSeconds, unit: 's', baseline: small.restoreSeconds, ratio: 1 },
      { name: 'restore + auto-restore, 100,000 encrypted rows vs 1,000 (ratio 1/3 = the target)', value: large.restoreSeconds, unit: 's', baseline: small.restoreSeconds, ratio: small.restoreSeconds / large.restoreSeconds },
      { name: `backup throughput, ${(large.databaseBytes / 1048576).toFixed(0)} MiB database vs a plain file copy`, value: large.backupMiBps, unit: 'MiB/s', baseline: large.copyMiBps, ratio: large.backupMiBps / large.copyMiBps },
    ],
  };
}

interface Measured {
  restoreSeconds: number;
  backupMiBps: number;
  copyMiBps: number;
  databaseBytes: number;
}

async function measure(rows: number): Promise<Measured> {
  const home = mkdtempSync(join(tmpdir(), `keyward-bench-restore-${rows}-`));
  try {
    mkdirSync(join(home, 'tokens'));
    writeFileSync(join(home, 'softhsm2.conf'), `directories.tokendir = ${join(home, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    const env: NodeJS.ProcessEnv = { ...process.env, KEYWARD_HOME: home, SOFTHSM2_CONF: join(home, 'softhsm2.conf'), KEYWARD_TLS_SANS: 'localhost' };
    delete env.DATABASE_URL;
    const secret = () => randomBytes(18).toString('base64url');
    const backupPassword = `Bk-${secret()}`;
    const runtime = new KeywardRuntime(loadConfig(env));
    try {
      await runtime.boot('bench');
      const step = async (type: string, payload: Record<string, unknown> = {}, secrets: Record<string, string> = {}) => {
        const result = await runtime.send(type, payload, secrets, 'bench');
        if (result.outcome !== 'applied') throw new Error(`${type}: ${result.message}`);
      };
      await step('SELECT_STORAGE', { storageType: 'softhsm' });
      await step('SETUP_HSM', { hsmType: 'softhsm', modulePath: MODULE, label: 'Trustpoint-SoftHSM' }, { pin: secret(), soPin: secret() });
      await step('CHOOSE_FRESH');
      await step('GENERATE_TLS', { subjectAltNames: ['localhost'] });
      await step('APPLY_TLS');
      await step('SET_BACKUP_PASSWORD', {}, { password: backupPassword });
      await step('SKIP_DEMO_DATA');
      await step('CREATE_ADMIN', { username: 'admin' }, { password: `Ad-${secret()}` });
      await insertDevices(runtime, rows);

      const databaseFile = join(home, 'keyward.sqlite');
      await runtime.store.db.raw('PRAGMA wal_checkpoint(TRUNCATE)');
      const databaseBytes = statSync(databaseFile).size;
      const copies: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t = process.hrtime.bigint();
        copyFileSync(databaseFile, join(home, `plain-copy-${i}.sqlite`));
        copies.push(Number(process.hrtime.bigint() - t) / 1e9);
      }
      const passphrase = `Pp-${secret()}`;
      const archive = join(home, 'bench.kwbak');
      const t = process.hrtime.bigint();
      await runtime.backup(archive, passphrase);
      const backupSeconds = Number(process.hrtime.bigint() - t) / 1e9;
      await runtime.close();

      const report = await drill(archive, passphrase, backupPassword);
      if (!report.ok) throw new Error(`the drill failed: ${JSON.stringify(report.steps)}`);
      process.stdout.write(`${rows} rows: database ${(databaseBytes / 1048576).toFixed(1)} MiB, backup ${backupSeconds.toFixed(2)} s, restore + auto-restore ${report.rtoSeconds.toFixed(2)} s\n`);
      return {
        restoreSeconds: report.rtoSeconds,
        backupMiBps: databaseBytes / 1048576 / backupSeconds,
        copyMiBps: databaseBytes / 1048576 / median(copies),
        databaseBytes,
      };
    } finally {
      await runtime.close().catch(() => undefined);
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** Devices with two encrypted secrets each, sealed as the repository does, inserted in batches. */
async function insertDevices(runtime: KeywardRuntime, count: number): Promise<void> {
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
