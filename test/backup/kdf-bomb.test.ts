import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../db/store';
import { DekKeyring } from '../../crypto/dek-keyring';
import { CLI, CliHome } from '../support/cli';
import { BOMB_KDF, kdfBombArchive, runMeasured } from '../support/kdf-bomb';
import { newSecret } from '../support/secrets';
import { destroyKek } from '../support/softhsm';
import { completeSoftHsmWizard, wizardSecrets } from '../support/wizard';

jest.setTimeout(120_000);

/** What the acceptance of issue 8 item 2 allows a refusal: a second, 300 MB at the peak. */
const REFUSAL_MS = 1000;
const PEAK_KIB = 300 * 1024;

/** Everything of a home that a refused restore must leave as it was (quarantine and staging included). */
function fingerprintHome(home: string): string {
  const hash = createHash('sha256');
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      // keyward.lock is the home's lock, taken by a restore before it reads the archive: not the store.
      if (name === 'cli.log' || name === 'given' || name === 'keyward.lock' || name.endsWith('-wal') || name.endsWith('-shm')) continue;
      const path = join(dir, name);
      hash.update(path);
      if (statSync(path).isDirectory()) walk(path);
      else hash.update(readFileSync(path));
    }
  };
  walk(home);
  return hash.digest('hex');
}

/**
 * Issue 8 item 2: a 196-byte archive that asks Argon2id for 4 GiB and 64 passes. `backup verify` and
 * `restore` refuse it from its header, before any derivation: in a real CLI process, whose peak
 * memory GNU time measures, in about the time any refusal of a bad file takes.
 */
describe('CLI: the Argon2id bomb archive', () => {
  const cli = new CliHome('kdf-bomb');
  const passphrase = `Pp-${newSecret('bomb-passphrase')}`;
  let bomb: string;
  let baselineMs: number;

  const keyward = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    runMeasured(process.execPath, [CLI, ...args, '--passphrase-file', cli.secretFile(passphrase)], { env: { ...cli.env, ...env }, timeoutMs: 20_000 });

  beforeAll(async () => {
    expect(cli.run(['boot']).status).toBe(0);
    bomb = kdfBombArchive();
    expect(statSync(bomb).size).toBe(196);
    // What refusing any bad file costs this CLI (start-up, opening the store): no KDF runs for it.
    const notAnArchive = join(kdfBombArchive(), '..', 'not-an-archive');
    writeFileSync(notAnArchive, 'hello\n');
    const baseline = await keyward(['backup', 'verify', notAnArchive]);
    expect(baseline.status).toBe(15);
    baselineMs = baseline.elapsedMs;
  });

  it('backup verify refuses it within a second, under 300 MB', async () => {
    const before = readFileSync(bomb);
    const run = await keyward(['backup', 'verify', bomb]);
    expect(run.timedOut).toBe(false);
    expect(run.status).toBe(15);
    expect(run.stderr).toMatch(/^keyward: Argon2id parameters m=4194304 KiB, t=64, p=64 exceed/m);
    expect(run.stderr).toContain('(error code WEAK_KDF_PARAMETERS, exit 15)');
    expect(run.stderr).toContain('KEYWARD_KDF_MAX_MEMORY_KIB');
    expect(run.stderr).not.toContain(passphrase);
    expect(run.elapsedMs - baselineMs).toBeLessThan(REFUSAL_MS);
    expect(run.maxRssKiB).toBeLessThan(PEAK_KIB);
    expect(readFileSync(bomb)).toEqual(before);
  });

  it('restore refuses it within a second, under 300 MB, and changes nothing', async () => {
    const before = fingerprintHome(cli.home);
    const state = JSON.parse(cli.run(['inspect', '--json']).stdout) as { state: string; revision: number };
    const run = await keyward(['restore', '--input', bomb]);
    expect(run.timedOut).toBe(false);
    expect(run.status).toBe(15);
    expect(run.stderr).toMatch(/WEAK_KDF_PARAMETERS/);
    expect(run.elapsedMs - baselineMs).toBeLessThan(REFUSAL_MS);
    expect(run.maxRssKiB).toBeLessThan(PEAK_KIB);
    expect(fingerprintHome(cli.home)).toBe(before);
    expect(existsSync(join(cli.home, 'quarantine'))).toBe(false);
    expect(JSON.parse(cli.run(['inspect', '--json']).stdout)).toMatchObject(state);
  });

  it('a host that raised its ceiling on purpose is the only one that derives more', async () => {
    // Raised, but not to 4 GiB: still refused, and the message names the configured ceiling.
    const raised = await keyward(['backup', 'verify', bomb], { KEYWARD_KDF_MAX_MEMORY_KIB: '1048576', KEYWARD_KDF_MAX_ITERATIONS: '32' });
    expect(raised.status).toBe(15);
    expect(raised.stderr).toContain('m ≤ 1048576 KiB, t ≤ 32');
    // A ceiling below what keyward itself writes with is a configuration error, not a silent refusal later.
    const contradictory = cli.run(['inspect'], { env: { KEYWARD_ARGON2_ITERATIONS: '8', KEYWARD_KDF_MAX_ITERATIONS: '4' } });
    expect(contradictory.status).toBe(1);
    expect(contradictory.stderr).toMatch(/KEYWARD_KDF_MAX_ITERATIONS \(4\) is below/);
  });
});

/** The key_material row of a CLI home, read and written as bytes (no DEK needed, none available). */
async function withKeyMaterial<T>(cli: CliHome, fn: (store: Store) => Promise<T>): Promise<T> {
  const database = cli.env.DATABASE_URL ? ({ client: 'pg', connectionString: cli.env.DATABASE_URL } as const) : ({ client: 'sqlite', filename: join(cli.home, 'keyward.sqlite') } as const);
  const store = Store.open(database, new DekKeyring());
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/**
 * The same bomb in the backup key that the backup password opens (backup_key.record, KWK1,
 * docs/formats.md §5.1; before keysets the KWB1 copy in key_material, which had no ceiling at all):
 * a row altered in the database asks for 4 GiB when auto-restore opens it with the backup password.
 * SUBMIT_BACKUP_PASSWORD is rejected from the stored parameters, before Argon2id.
 */
describe('CLI: a backup key record asking Argon2id for 4 GiB', () => {
  const cli = new CliHome('kdf-bomb-copy');
  const secrets = wizardSecrets();

  it('is refused before any derivation at auto-restore, within a second, under 300 MB, changing nothing', async () => {
    expect(cli.run(['boot']).status).toBe(0);
    completeSoftHsmWizard(cli, secrets);
    destroyKek(cli.env.SOFTHSM2_CONF!, secrets.pin);
    expect(cli.run(['boot']).status).toBe(0);
    expect(cli.inspect().wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');

    const forged = await withKeyMaterial(cli, async (store) => {
      const key = (await store.keyMaterial.backupKey())!;
      const record = Buffer.from(key.record);
      record.writeUInt32BE(BOMB_KDF.memoryKiB, 6);
      record.writeUInt32BE(BOMB_KDF.iterations, 10);
      record[14] = BOMB_KDF.parallelism;
      createHash('sha256').update(record.subarray(0, 139)).digest().copy(record, 139, 0, 8);
      await store.db('backup_key').update({ record });
      return record;
    });

    const env = { ...cli.env };
    const baseline = await runMeasured(process.execPath, [CLI, 'inspect'], { env, timeoutMs: 20_000 });
    expect(baseline.status).toBe(0);
    const before = cli.inspect();
    const run = await runMeasured(process.execPath, [CLI, 'send', 'SUBMIT_BACKUP_PASSWORD', '--secret', 'password=stdin'], { env, stdin: `${secrets.backup}\n`, timeoutMs: 20_000 });
    expect(run.timedOut).toBe(false);
    expect(run.status).toBe(5);
    expect(run.stderr).toMatch(/Argon2id parameters m=4194304 KiB, t=64, p=64 exceed this keyward's ceiling/);
    expect(run.stderr).not.toContain(secrets.backup);
    expect(run.elapsedMs - baseline.elapsedMs).toBeLessThan(REFUSAL_MS);
    expect(run.maxRssKiB).toBeLessThan(PEAK_KIB);
    const after = cli.inspect();
    expect(after.state).toBe(before.state);
    expect(after.wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    expect(after.context.passwordFailures).toBe(before.context.passwordFailures); // not a wrong password: no lockout step
    expect(await withKeyMaterial(cli, async (store) => (await store.keyMaterial.backupKey())!.record)).toEqual(forged);
  });
});
