import { join } from 'node:path';
import { CliHome } from '../support/cli';
import { testDir } from '../support/run-dir';
import { newSecret } from '../support/secrets';
import { SOFTHSM_SETUP, withStore } from '../support/wizard';
import { Browser, pathOf } from './support/browser';
import { logIn as logInHttp, unlock as unlockHttp, walkWizard } from './support/http-wizard';
import { KeywardServer } from './support/keyward-server';
import { fieldError, logIn, submit, text } from './support/pages';
import { WebClient } from './support/web-client';

jest.setTimeout(300_000);

/**
 * The Backups page in Chromium on a SoftHSM install with devices: a backup made and downloaded
 * through the page (its passphrase typed twice), verified by uploading it to the same page, then
 * restored by the CLI (`keyward restore`) on another home with a new token, where auto-restore
 * brings every device secret back byte-equal.
 */
describe('web: the Backups page', () => {
  const server = new KeywardServer('backups');
  const secrets = { pin: newSecret('pin'), soPin: newSecret('sopin'), backupPassword: `Bk-${newSecret('backup')}`, adminPassword: `Ad-${newSecret('admin')}` };
  const passphrase = `Pp-${newSecret('passphrase')}`;
  const devices = Array.from({ length: 3 }, (_, i) => ({ name: `device-${i}`, estPassword: newSecret(`est${i}`), cmpSharedSecret: newSecret(`cmp${i}`) }));
  const archive = join(testDir('backups-download'), 'downloaded.kwbak');
  let browser: Browser;

  beforeAll(async () => {
    await server.start();
    const installer = new WebClient(server.url);
    await unlockHttp(installer, await server.setupCode());
    await walkWizard(installer, 'softhsm', secrets);
    const client = new WebClient(server.url);
    await logInHttp(client, 'admin', secrets.adminPassword);
    for (const device of devices) expect((await client.postForm('/devices', '/devices', device)).status).toBe(303);
    browser = await Browser.launch('backups');
  });

  afterAll(async () => {
    await browser?.close();
    await server.stop();
  });

  it('refuses two different passphrases, then makes a backup and downloads it', async () => {
    const page = browser.page;
    await page.goto(`${server.url}/backups`);
    await logIn(browser, 'admin', secrets.adminPassword);
    expect(pathOf(page)).toBe('/backups');
    expect(await text(page, '#last-backup')).toBe('none yet');
    expect(await browser.shot('backups', page)).toEqual([]);

    await page.fill('#passphrase', passphrase);
    await page.fill('#passphraseConfirm', `${passphrase}x`);
    expect(await submit(page, '#make-backup')).toBe(400);
    expect(await fieldError(page, 'passphraseConfirm')).toMatch(/differ: type the same one twice/);
    expect(await page.$$('#history tr[data-kind]')).toHaveLength(0);

    await page.fill('#passphrase', passphrase);
    await page.fill('#passphraseConfirm', passphrase);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#make-backup')]);
    expect(download.suggestedFilename()).toMatch(/^keyward-\d{8}T\d{6}Z\.kwbak$/);
    await download.saveAs(archive);
    expect(await download.failure()).toBeNull();

    await page.goto(`${server.url}/backups`);
    expect(await text(page, '#last-backup')).toMatch(/^succeeded \d+ seconds? ago/);
    expect(
      await page.$$eval('#history tr[data-kind]', (rows: Array<{ getAttribute(name: string): string | null }>) =>
        rows.map((row) => [row.getAttribute('data-kind'), row.getAttribute('data-trigger'), row.getAttribute('data-status')]),
      ),
    ).toEqual([['backup', 'web', 'ok']]);
    await page.goto(`${server.url}/status`);
    expect(await text(page, '#last-backup')).toMatch(/^succeeded/);
    expect(await browser.shot('status-backups', page)).toEqual([]);
  });

  it('verifies the downloaded archive through the page, and says so when the passphrase is wrong', async () => {
    const page = browser.page;
    await page.goto(`${server.url}/backups`);
    await page.setInputFiles('#archive', archive);
    await page.fill('#verify-passphrase', `${passphrase}-wrong`);
    expect(await submit(page, '#verify-archive')).toBe(422);
    expect(await fieldError(page, 'passphrase')).toMatch(/passphrase does not open this archive/);
    expect(await page.$('#verified')).toBeNull();

    await page.setInputFiles('#archive', archive);
    await page.fill('#verify-passphrase', passphrase);
    expect(await submit(page, '#verify-archive')).toBe(200);
    expect(await page.getAttribute('#verified', 'data-intact')).toBe('true');
    const entries = await page.$$eval('#verified-entries tr[data-entry]', (rows: Array<{ getAttribute(name: string): string | null }>) =>
      rows.map((row) => [row.getAttribute('data-entry'), row.getAttribute('data-ok')]),
    );
    expect(entries.map(([name]) => name)).toEqual(expect.arrayContaining(['config.json', 'tls/server.crt', 'transition-log.jsonl']));
    expect(entries.every(([, ok]) => ok === 'true')).toBe(true);
    expect(await browser.shot('backups-verified', page)).toEqual([]);
  });

  it('the CLI restores the downloaded archive on a new host, and auto-restore brings every secret back byte-equal', async () => {
    const cli = new CliHome('backups-restored');
    const restored = cli.run(['restore', '--input', archive, '--passphrase-file', cli.secretFile(passphrase)]);
    expect([restored.status, restored.stderr]).toEqual([0, expect.any(String)]);
    // A new host: its token directory is empty, so the KEK is gone with it.
    expect(cli.inspect().wizardState).toBe('WIZARD_SETUP_HSM_AUTORESTORE');
    expect(cli.send('SETUP_HSM', SOFTHSM_SETUP, { pin: newSecret('pin'), soPin: newSecret('sopin') }).status).toBe(0);
    expect(cli.send('SUBMIT_BACKUP_PASSWORD', undefined, { password: secrets.backupPassword }).status).toBe(0);
    expect(cli.inspect().state).toBe('operational');
    const read = await withStore(cli, async (store) =>
      Promise.all(devices.map(async ({ name }) => (({ estPassword, cmpSharedSecret }) => ({ name, estPassword, cmpSharedSecret }))((await store.devices.findByName(name))!))),
    );
    expect(read).toEqual(devices);
  });
});
