import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { extractArchive, verifyArchive } from '../../backup';
import { writeArchive } from '../../backup/archive-writer';
import { CliHome } from '../support/cli';
import { engines, freshDatabase, TestDatabase } from '../support/databases';
import { testDir } from '../support/run-dir';
import { newSecret, registerSecretSource } from '../support/secrets';
import { completeSoftHsmWizard, SOFTHSM_SETUP, wizardSecrets, withStore } from '../support/wizard';
import { openDatabase } from '../../db/database';
import { WebSessionRepository, type Store } from '../../db/store';

/**
 * Backup and restore (docs/backup-format.md): a populated SoftHSM install is backed up while its
 * server answers requests, restored onto a new store with a new token, auto-restored with the
 * backup password, and every secret reads back byte-equal. Every kind of bad archive gets its own
 * clear error and leaves the current store untouched.
 */
jest.setTimeout(300_000);

const secrets = wizardSecrets();
const passphrase = `Pp-${newSecret('passphrase')}`;

async function allSecrets(store: Store): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {};
  for (const d of await store.devices.list()) {
    const device = (await store.devices.get(d.id))!;
    out[`device:${d.name}:est`] = device.estPassword;
    out[`device:${d.name}:cmp`] = device.cmpSharedSecret;
  }
  for (const c of await store.credentials.list()) out[`credential:${c.name}`] = (await store.credentials.get(c.id))!.privateKeyPem;
  const tls = await store.tls.active();
  out['tls:active'] = tls?.privateKeyPem ?? null;
  for (const ca of await store.cas.list()) out[`ca:${ca.name}`] = `${ca.keyLocation}:${ca.active}`;
  return out;
}

/** Everything of a home a failed restore must not touch: the database file and the TLS directory. */
function fingerprintStore(cli: CliHome): string {
  const hash = createHash('sha256');
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const stat = statSync(path);
      if (stat.isDirectory()) walk(path);
      else hash.update(name).update(readFileSync(path));
    }
  };
  hash.update(readFileSync(join(cli.home, 'keyward.sqlite')));
  if (existsSync(join(cli.home, 'tls'))) walk(join(cli.home, 'tls'));
  hash.update(existsSync(join(cli.home, 'quarantine')) ? readdirSync(join(cli.home, 'quarantine')).join(',') : '');
  return hash.digest('hex');
}

function passphraseFile(cli: CliHome, value = passphrase): string {
  return cli.secretFile(value);
}

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, rejectUnauthorized: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

describe('backup and restore', () => {
  let source: CliHome;
  let archive: string;
  let expected: Record<string, string | null>;

  beforeAll(async () => {
    source = new CliHome('backup-source');
    expect(source.run(['boot']).status).toBe(0);
    completeSoftHsmWizard(source, secrets);
    await withStore(source, async (store) => {
      for (let i = 0; i < 25; i++) await store.devices.create({ name: `device-${i}`, estPassword: newSecret('est'), cmpSharedSecret: i % 2 ? newSecret('cmp') : null });
      const key = `-----BEGIN PRIVATE KEY-----\n${newSecret('issuing-key')}\n-----END PRIVATE KEY-----\n`;
      const credentialId = await store.credentials.create({ name: 'issuing', privateKeyPem: key });
      await store.cas.create({ name: 'db-ca', keyLocation: 'db', credentialId });
      await store.cas.create({ name: 'hsm-ca', keyLocation: 'token', tokenKeyLabel: 'ca-key' });
      // The source host's administrator is logged in: the archive carries that session.
      const admin = (await store.admins.findByUsername('admin'))!;
      const created = new Date();
      await new WebSessionRepository(store.db).create({
        idHash: 'a'.repeat(64),
        setupAuthorized: false,
        adminUserId: admin.id,
        createdAt: created.toISOString(),
        expiresAt: new Date(created.getTime() + 3_600_000).toISOString(),
      });
      expected = await allSecrets(store);
    });
    expect(Object.keys(expected).length).toBeGreaterThan(50);
  });

  it('backs up while the server answers requests; the archive is 0600 and verifies', async () => {
    const { child, port } = await source.startServer();
    try {
      let answered = 0;
      let failed = 0;
      let running = true;
      const load = (async () => {
        while (running) {
          const [livez, readyz] = await Promise.all([get(port, '/livez'), get(port, '/readyz')]);
          if (livez === 200 && readyz === 200) answered += 1;
          else failed += 1;
        }
      })();
      archive = join(testDir('archives'), 'install.kwbak');
      const backup = source.run(['backup', '--output', archive, '--passphrase-file', passphraseFile(source)]);
      running = false;
      await load;
      expect({ status: backup.status, stderr: backup.stderr }).toEqual({ status: 0, stderr: '' });
      expect(answered).toBeGreaterThan(0);
      expect(failed).toBe(0);
      // A restore would move the database from under the running server: refused, nothing touched.
      const refused = source.run(['restore', '--input', archive, '--passphrase-file', passphraseFile(source)]);
      expect(refused.status).toBe(18);
      expect(refused.stderr).toMatch(/another keyward process holds .* \(pid \d+, server, since .*\): stop it first; nothing was changed/);
    } finally {
      child.kill('SIGTERM');
    }
    expect(statSync(archive).mode & 0o777).toBe(0o600);
    const verify = source.run(['backup', 'verify', archive, '--passphrase-file', passphraseFile(source)]);
    expect(verify.status).toBe(0);
    expect(verify.stdout).toMatch(/intact/);
    expect(verify.stdout).toMatch(/database\/keyward\.sqlite/);
    expect(verify.stdout).toMatch(/transition-log\.jsonl/);
    expect(verify.stdout).toMatch(/tls\/server\.key/);
    expect(verify.stdout).toMatch(/config\.json/);
    // No PIN, password or passphrase anywhere in the archive's plaintext either.
    const inside = testDir('archive-inside');
    await extractArchive(archive, passphrase, join(inside, 'x'));
    const everything = readdirSync(join(inside, 'x'), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => readFileSync(join(e.parentPath, e.name), 'utf8'))
      .join('\n');
    for (const secret of [secrets.pin, secrets.soPin, secrets.backup, secrets.admin, passphrase]) expect(everything).not.toContain(secret);
    const manifest = (await verifyArchive(archive, passphrase)).manifest;
    expect(manifest).toMatchObject({
      keywardVersion: expect.any(String),
      schemaVersion: expect.stringMatching(/^0\d\d_/),
      databaseEngine: 'sqlite',
      logChainHead: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(manifest.host.hostname).toBeTruthy();
    expect(manifest.entries.every((e) => /^[0-9a-f]{64}$/.test(e.sha256))).toBe(true);
  });

  it.each(engines())('restores onto a new store (%s) with a new token; auto-restore brings every secret back byte-equal', async (engine) => {
    let database: TestDatabase | null = null;
    const env: NodeJS.ProcessEnv = {};
    if (engine === 'postgres') {
      database = await freshDatabase('postgres', 'restore');
      if (database.config.client === 'pg') env.DATABASE_URL = database.config.connectionString;
    }
    try {
      const target = new CliHome(`restore-target-${engine}`, env);
      const restore = target.run(['restore', '--input', archive, '--passphrase-file', passphraseFile(target)]);
      expect({ status: restore.status, stderr: restore.stderr.replace(/keyward: [a-z ]+\n/g, '') }).toEqual({ status: 0, stderr: '' });
      expect(target.inspect()).toMatchObject({ wizardState: 'WIZARD_SETUP_HSM_AUTORESTORE', scenario: 'RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED' });
      expect(target.send('SETUP_HSM', SOFTHSM_SETUP, { pin: newSecret('pin'), soPin: newSecret('sopin') }).status).toBe(0);
      const recover = target.run(['send', 'SUBMIT_BACKUP_PASSWORD', '--secret', `password=file:${target.secretFile(secrets.backup)}`]);
      expect(recover.status).toBe(0);
      expect(target.inspect().state).toBe('operational');
      const restored = await withStore(target, allSecrets);
      // The source host's admin cookie is worth nothing here.
      expect(await withStore(target, (store) => store.db('web_sessions').select('id_hash'))).toEqual([]);
      // The CA whose key lived in the lost token is deactivated; every secret is byte-equal.
      expect(restored).toEqual({ ...expected, 'ca:hsm-ca': 'token:false' });
      expect(target.run(['audit', 'verify']).status).toBe(0);
    } finally {
      await database?.drop();
    }
  });

  describe('a bad archive changes nothing and says what is wrong', () => {
    let target: CliHome;
    let before: string;

    beforeAll(() => {
      target = new CliHome('restore-refusals');
      expect(target.run(['boot']).status).toBe(0);
      expect(target.send('SELECT_STORAGE', { storageType: 'software' }).status).toBe(0);
      before = fingerprintStore(target);
    });

    afterEach(() => {
      expect(fingerprintStore(target)).toBe(before);
    });

    const restore = (file: string, pass = passphrase) => target.run(['restore', '--input', file, '--passphrase-file', passphraseFile(target, pass)]);

    it('a flipped byte anywhere: ARCHIVE_CORRUPT (or NOT_AN_ARCHIVE in the magic)', () => {
      const bytes = readFileSync(archive);
      const positions = [2, 9, 40, 100, 5000, Math.floor(bytes.length / 2), bytes.length - 200, bytes.length - 30, bytes.length - 1];
      for (const position of positions) {
        const copy = Buffer.from(bytes);
        copy[position]! ^= 0x04;
        const file = join(testDir('flipped'), 'a.kwbak');
        writeFileSync(file, copy);
        const run = restore(file);
        expect({ position, status: run.status }).toEqual({ position, status: position < 8 ? 15 : position < 80 ? expect.any(Number) : 10 });
        expect(run.stderr).toMatch(/ARCHIVE_CORRUPT|NOT_AN_ARCHIVE|ARCHIVE_TRUNCATED|ARCHIVE_VERSION_UNSUPPORTED|WEAK_KDF_PARAMETERS/);
        expect([10, 12, 14, 15]).toContain(run.status);
      }
    });

    it('a wrong passphrase: WRONG_PASSPHRASE', () => {
      const run = restore(archive, `Wrong-${newSecret('passphrase')}`);
      expect(run.status).toBe(11);
      expect(run.stderr).toMatch(/^keyward: the backup passphrase is wrong/m);
      expect(run.stderr).toContain('(error code WRONG_PASSPHRASE, exit 11)');
    });

    it('a truncated file: ARCHIVE_TRUNCATED', () => {
      const bytes = readFileSync(archive);
      for (const length of [Math.floor(bytes.length / 2), bytes.length - 5]) {
        const file = join(testDir('truncated'), 'a.kwbak');
        writeFileSync(file, bytes.subarray(0, length));
        const run = restore(file);
        expect({ length, status: run.status }).toEqual({ length, status: 12 });
        expect(run.stderr).toContain('(error code ARCHIVE_TRUNCATED, exit 12)');
      }
    });

    /** Re-packs the real archive's entries with a manifest the test rewrites. */
    async function repack(name: string, rewrite: Parameters<typeof writeArchive>[4] extends infer I ? I : never): Promise<string> {
      const dir = join(testDir(name), 'x');
      const extracted = await extractArchive(archive, passphrase, dir);
      const file = join(testDir(`${name}-out`), 'a.kwbak');
      const entries = extracted.entries.map((e) => ({ name: e.name, data: readFileSync(join(dir, e.name)) }));
      const m = extracted.manifest;
      await writeArchive(file, passphrase, entries, { manifestExtras: { schemaVersion: m.schemaVersion, databaseEngine: m.databaseEngine, logChainHead: m.logChainHead, extras: m.extras } }, rewrite);
      return file;
    }

    it('a manifest whose hash disagrees with an entry: MANIFEST_MISMATCH', async () => {
      const file = await repack('lying-manifest', {
        rewriteManifest: (manifest) => ({ ...manifest, entries: manifest.entries.map((e) => (e.name === 'config.json' ? { ...e, sha256: '0'.repeat(64) } : e)) }),
      });
      const run = restore(file);
      expect(run.status).toBe(13);
      expect(run.stderr).toContain('(error code MANIFEST_MISMATCH, exit 13)');
    });

    it('an archive from a newer keyward: ARCHIVE_TOO_NEW', async () => {
      const file = await repack('newer', { rewriteManifest: (manifest) => ({ ...manifest, keywardVersion: '99.0.0' }) });
      const run = restore(file);
      expect(run.status).toBe(14);
      expect(run.stderr).toMatch(/^keyward: the archive was made by keyward 99\.0\.0.*nothing was changed/m);
      expect(run.stderr).toContain('(error code ARCHIVE_TOO_NEW, exit 14)');
    });

    it('backup never writes over an existing file', () => {
      const run = target.run(['backup', '--output', archive, '--passphrase-file', passphraseFile(target)]);
      expect(run.status).toBe(16);
      expect(run.stderr).toContain('(error code OUTPUT_EXISTS, exit 16)');
    });
  });

  it("restores from the wizard's set-up mode with the same code, keeping the replaced store in quarantine", async () => {
    const fresh = new CliHome('wizard-restore');
    expect(fresh.run(['boot']).status).toBe(0);
    expect(fresh.send('SELECT_STORAGE', { storageType: 'software' }).status).toBe(0);
    expect(fresh.inspect().wizardState).toBe('WIZARD_SETUP_MODE');
    const wrong = fresh.send('RESTORE_BACKUP', { path: archive }, { passphrase: `Wrong-${newSecret('passphrase')}` });
    expect(wrong.status).toBe(5);
    expect(wrong.stderr).toMatch(/passphrase is wrong/);
    expect(fresh.inspect().wizardState).toBe('WIZARD_SETUP_MODE');
    const run = fresh.send('RESTORE_BACKUP', { path: archive }, { passphrase });
    expect(run.status).toBe(0);
    expect(fresh.inspect()).toMatchObject({ wizardState: 'WIZARD_SETUP_HSM_AUTORESTORE' });
    const db = openDatabase({ client: 'sqlite', filename: join(fresh.home, 'keyward.sqlite') });
    try {
      expect(await db('web_sessions').select('id_hash')).toEqual([]);
    } finally {
      await db.destroy();
    }
    const quarantine = readdirSync(join(fresh.home, 'quarantine'));
    expect(quarantine).toHaveLength(1);
    expect(existsSync(join(fresh.home, 'quarantine', quarantine[0]!, 'keyward.sqlite'))).toBe(true);
    registerSecretSource(join(fresh.home, 'never-written'));
  });
});
