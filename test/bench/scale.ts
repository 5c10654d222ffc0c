import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../server/config';
import { drill } from '../../server/drill';
import { KeywardRuntime } from '../../server/runtime';
import { softHsmInstallInProcess } from './installs';
import { scaled } from './measure';
import { insertDevices } from './restore';

/**
 * README's scale figures (issue 13 item 6): backup, restore, restore + auto-restore and a DEK rotation
 * (`keyward rotate dek`: add, promote, re-encrypt every value, retire) of a SoftHSM install on SQLite
 * holding N encrypted secret values (devices with two each). Each operation runs
 * in its own process, so its peak memory is that process's maximum resident set (getrusage), Node
 * and Argon2id's 64 MiB included. Not a bench: there is no baseline, only the figures.
 *   node dist/test/bench/scale.js [N ...]
 */
const DEFAULT_SIZES = scaled([1_000, 100_000, 1_000_000], [1_000, 10_000]);

interface Install {
  env: NodeJS.ProcessEnv;
  backupPassword: string;
  passphrase: string;
  archive: string;
}

type Figures = { seconds: number; peakMiB: number; detail?: Record<string, number> };

async function child(step: string, dir: string): Promise<void> {
  const file = join(dir, 'install.json');
  let out: Figures;
  if (step === 'prepare') {
    const values = Number(process.argv[4]);
    const home = join(dir, 'home');
    const { runtime, env, backupPassword } = await softHsmInstallInProcess(home);
    try {
      await insertDevices(runtime, values / 2);
      await runtime.store.db.raw('PRAGMA wal_checkpoint(TRUNCATE)');
    } finally {
      await runtime.close();
    }
    const install: Install = { env, backupPassword, passphrase: `Pp-${randomBytes(18).toString('base64url')}`, archive: join(dir, 'store.kwbak') };
    writeFileSync(file, JSON.stringify(install), { mode: 0o600 });
    out = { seconds: 0, peakMiB: 0, detail: { databaseMiB: statSync(join(home, 'keyward.sqlite')).size / 1048576 } };
  } else {
    const install = JSON.parse(readFileSync(file, 'utf8')) as Install;
    process.env.SOFTHSM2_CONF = install.env.SOFTHSM2_CONF;
    if (step === 'backup') {
      const runtime = new KeywardRuntime(loadConfig(install.env));
      try {
        await runtime.boot('scale');
        const t = process.hrtime.bigint();
        await runtime.backup(install.archive, install.passphrase);
        out = { seconds: Number(process.hrtime.bigint() - t) / 1e9, peakMiB: 0, detail: { archiveMiB: statSync(install.archive).size / 1048576 } };
      } finally {
        await runtime.close();
      }
    } else if (step === 'rotate') {
      const runtime = new KeywardRuntime(loadConfig(install.env));
      try {
        await runtime.boot('scale');
        const t = process.hrtime.bigint();
        const result = await runtime.send('ROTATE_DEK', {}, {}, 'scale');
        if (result.outcome !== 'applied' || result.state !== 'operational') throw new Error(`ROTATE_DEK: ${result.outcome} ${result.state} ${result.message ?? ''}`);
        out = { seconds: Number(process.hrtime.bigint() - t) / 1e9, peakMiB: 0 };
      } finally {
        await runtime.close();
      }
    } else {
      const report = await drill(install.archive, install.passphrase, install.backupPassword);
      if (!report.ok) throw new Error(`the drill failed: ${JSON.stringify(report.steps)}`);
      out = { seconds: report.rtoSeconds, peakMiB: 0, detail: { restoreSeconds: report.steps[0]!.ms / 1000 } };
    }
  }
  out.peakMiB = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

function runChild(step: string, dir: string, extra: string[] = []): Figures {
  const text = execFileSync(process.execPath, [__filename, step, dir, ...extra], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
  return JSON.parse(text.trim().split('\n').at(-1)!) as Figures;
}

function main(): void {
  const sizes = process.argv.length > 2 ? process.argv.slice(2).map(Number) : DEFAULT_SIZES;
  const rows: string[] = [];
  for (const values of sizes) {
    const dir = mkdtempSync(join(tmpdir(), `keyward-scale-${values}-`));
    try {
      const prepared = runChild('prepare', dir, [String(values)]);
      const backup = runChild('backup', dir);
      const restored = runChild('drill', dir);
      const rotated = runChild('rotate', dir);
      const row =
        `| ${values.toLocaleString('en-US')} | ${prepared.detail!.databaseMiB!.toFixed(1)} MiB | ${backup.seconds.toFixed(2)} s, ${backup.peakMiB.toFixed(0)} MiB (archive ${backup.detail!.archiveMiB!.toFixed(1)} MiB) ` +
        `| ${restored.detail!.restoreSeconds!.toFixed(2)} s | ${restored.seconds.toFixed(2)} s, ${restored.peakMiB.toFixed(0)} MiB | ${rotated.seconds.toFixed(2)} s, ${rotated.peakMiB.toFixed(0)} MiB |`;
      process.stdout.write(`${row}\n`);
      rows.push(row);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  process.stdout.write(
    `\n| secret values | database | backup: time, peak memory | restore | restore + auto-restore: time, peak memory | DEK rotation: time, peak memory |\n|---|---|---|---|---|---|\n${rows.join('\n')}\n`,
  );
}

if (require.main === module) {
  const [step, dir] = process.argv.slice(2);
  if (step === 'prepare' || step === 'backup' || step === 'drill' || step === 'rotate') {
    child(step, dir!).catch((error: Error) => {
      process.stderr.write(`${error.stack ?? error.message}\n`);
      process.exit(1);
    });
  } else main();
}
