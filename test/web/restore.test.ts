import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testDir } from '../support/run-dir';
import { newSecret, registerSecretSource } from '../support/secrets';
import { logIn, softHsmForm, step, unlock, walkWizard } from './support/http-wizard';
import { CLI, KeywardServer } from './support/keyward-server';
import { servedFingerprint } from './support/tls-probe';
import { fieldError, lifecycleOf, WebClient } from './support/web-client';

jest.setTimeout(120_000);

/**
 * Backup and restore through the web: an archive that `keyward backup` took from a running SoftHSM install is
 * uploaded on the set-up-mode page of a new host. A wrong passphrase changes nothing; the right one
 * replaces the store, and the new host goes through auto-restore with the backup password (its token
 * is on the old host). The device's EST password and the TLS credential come back.
 */
describe('web: restoring a backup archive onto a new host', () => {
  const source = new KeywardServer('restore-source');
  const target = new KeywardServer('restore-target');
  const secrets = { pin: newSecret('pin'), soPin: newSecret('sopin'), backupPassword: `Bk-${newSecret('backup')}`, adminPassword: `Ad-${newSecret('admin')}` };
  const passphrase = `Pp-${newSecret('passphrase')}`;
  const estPassword = newSecret('est');

  afterAll(async () => {
    await source.stop();
    await target.stop();
  });

  it('restores through the set-up-mode page, then auto-restores with the backup password', async () => {
    // ── the source: a complete SoftHSM install with a device, backed up while it runs ──
    await source.start();
    const installer = new WebClient(source.url);
    await unlock(installer, await source.setupCode());
    await walkWizard(installer, 'softhsm', secrets);
    const admin = new WebClient(source.url);
    await logIn(admin, 'admin', secrets.adminPassword);
    expect(await step(admin, '/devices', { name: 'restored-device', estPassword, cmpSharedSecret: '' })).toBe('/devices');
    const sourceTls = servedFingerprint(source.port);

    const dir = testDir('restore-archive');
    const passphraseFile = join(dir, 'passphrase');
    writeFileSync(passphraseFile, `${passphrase}\n`, { mode: 0o600 });
    registerSecretSource(passphraseFile);
    const archive = join(dir, 'keyward.kwbak');
    const backup = spawnSync(process.execPath, [CLI, 'backup', '--output', archive, '--passphrase-file', passphraseFile], {
      env: { ...process.env, KEYWARD_HOME: source.home, SOFTHSM2_CONF: join(source.home, 'softhsm2.conf'), DATABASE_URL: '' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (backup.status !== 0) throw new Error(`keyward backup failed (${backup.status}): ${backup.stderr}`);
    await source.stop();

    // ── the new host: unlock, software at first, then the archive on the set-up-mode page ──
    await target.start();
    const client = new WebClient(target.url);
    await unlock(client, await target.setupCode());
    expect(await step(client, '/setup-wizard/crypto-storage-setup/', { storageType: 'software' })).toBe('/setup-wizard/setup_mode/');
    const page = await client.get('/setup-wizard/setup_mode/');
    expect(page.body).toContain('action="/setup-wizard/restore/"');

    const upload = (secret: string) =>
      client.postMultipart('/setup-wizard/setup_mode/', '/setup-wizard/restore/', { passphrase: secret }, { archive: { name: 'keyward.kwbak', data: readFileSync(archive) } });

    const before = await lifecycleOf(client);
    const wrong = await upload(`${passphrase}-wrong`);
    expect(wrong.status).toBe(400);
    expect(fieldError(wrong.body, 'passphrase')).toBeTruthy();
    const unchanged = await lifecycleOf(client);
    expect(unchanged.state).toBe(before.state);

    const restored = await upload(passphrase);
    expect(restored.status).toBe(303);
    expect(new URL(restored.location!).pathname).toBe('/setup-wizard/auto-restore-hsm-setup/softhsm/');
    expect((await lifecycleOf(client)).state).toBe('autoRestore.hsmSetup.waiting');

    // ── auto-restore on the new host ──
    expect(await step(client, '/setup-wizard/auto-restore-hsm-setup/softhsm/', softHsmForm(secrets.pin, secrets.soPin, { slot: null }))).toBe('/setup-wizard/auto_restore_password/');
    expect(await step(client, '/setup-wizard/auto_restore_password/', { password: secrets.backupPassword })).toBe('/summary');
    expect(servedFingerprint(target.port)).toBe(sourceTls);

    // ── the archive's administrator and device ──
    const restoredAdmin = new WebClient(target.url);
    await logIn(restoredAdmin, 'admin', secrets.adminPassword);
    const devices = (await restoredAdmin.get('/devices')).body;
    const id = /action="\/devices\/(\d+)\/reveal"/.exec(devices.slice(devices.indexOf('data-device="restored-device"')))![1]!;
    const revealed = await restoredAdmin.postForm('/devices', `/devices/${id}/reveal`, { which: 'estPassword' });
    expect(/id="revealed-secret">([^<]*)</.exec(revealed.body)?.[1]).toBe(estPassword);
  });
});
