import type { Page } from 'playwright-core';
import { newSecret } from '../support/secrets';
import { Browser, pathOf } from './support/browser';
import { KeywardServer } from './support/keyward-server';
import { fieldError, logIn, submit, text, unlock } from './support/pages';
import { servedFingerprint } from './support/tls-probe';
import { lifecycleOf, WebClient } from './support/web-client';

jest.setTimeout(240_000);

/**
 * The whole SoftHSM install in Chromium, from the set-up code to the admin login; a device; a restart
 * with the token directory deleted; auto-restore (HSM set-up, a wrong password, the right one); the
 * device's EST password unchanged. openssl s_client checks the served certificate throughout.
 */
describe('web: SoftHSM wizard, token loss and auto-restore in a browser', () => {
  const server = new KeywardServer('softhsm-walk');
  const pin = newSecret('pin');
  const soPin = newSecret('sopin');
  const backupPassword = `Bk-${newSecret('backup')}`;
  const adminPassword = `Ad-${newSecret('admin')}`;
  const estPassword = newSecret('est');
  const wrongPassword = `Wr-${newSecret('wrong')}`;
  let browser: Browser;

  beforeAll(async () => {
    await server.start();
    browser = await Browser.launch('softhsm-walk');
  });

  afterAll(async () => {
    await browser?.close();
    await server.stop();
    if (browser) process.stdout.write(`web: ${browser.screenshots} screenshots of the SoftHSM walk in ${browser.shots}\n`);
  });

  const at = (page: Page) => pathOf(page);
  const client = new WebClient('');
  beforeEach(() => {
    client.baseUrl = server.url;
  });

  const fillPins = async (page: Page) => {
    for (const [field, value] of [
      ['#pin', pin],
      ['#pinConfirm', pin],
      ['#soPin', soPin],
      ['#soPinConfirm', soPin],
    ] as const) {
      await page.fill(field, value);
    }
  };

  /** The figures a summary page shows. */
  const summaryOf = async (page: Page) => ({
    title: await text(page, '#summary-title'),
    token: await text(page, '#summary-token'),
    module: await text(page, '#summary-module'),
    kekLabel: await text(page, '#summary-kek-label'),
    kekId: await text(page, '#summary-kek-id'),
    dekKeyId: await text(page, '#summary-dek-key-id'),
    fingerprint: await text(page, '#summary-fingerprint'),
    keepOffline: await text(page, '#keep-offline'),
    valuesChecked: (await page.$('#values-checked')) ? (await text(page, '#values-checked')).replace(/\s+/g, ' ') : null,
    deactivated: await page.$$eval('#deactivated-cas li', (items: Array<{ textContent: string | null }>) => items.map((item) => (item.textContent ?? '').trim())),
  });

  /** The secret values stored (docs/formats.md §4's columns), counted in the database itself. */
  const storedSecretValues = () =>
    server.query(async (db) => {
      const columns: Array<[string, string]> = [
        ['devices', 'est_password'],
        ['devices', 'cmp_shared_secret'],
        ['credentials', 'private_key'],
        ['tls_server_credentials', 'private_key'],
        ['custody_canary', 'value'],
        ['log_chain_keys', 'sealed_key'],
        ['web_secrets', 'value'],
      ];
      let total = 0;
      for (const [table, column] of columns) total += Number((await db(table).whereNotNull(column).count({ n: '*' }).first())?.n ?? 0);
      return total;
    });

  it('walks the wizard, loses the token, auto-restores, and keeps the device secret', async () => {
    const page = browser.page;

    // ── set-up code ──
    await page.goto(`${server.url}/setup-wizard/demo-data/`);
    expect(at(page)).toBe('/setup-wizard/unlock/');
    await page.fill('#code', 'AAAA-BBBB-CCCC-DDDD-EEEE-FFFF');
    expect(await submit(page, 'button[type=submit]')).toBe(400);
    expect(await fieldError(page, 'code')).toMatch(/not the set-up code/);
    await unlock(browser, await server.setupCode());

    // ── crypto storage ──
    expect(at(page)).toBe('/setup-wizard/crypto-storage-setup/');
    await browser.shot('crypto-storage');
    await page.check('input[name=storageType][value=softhsm]');
    await submit(page, 'button[type=submit]');

    // ── HSM set-up: back a step (the machine's BACK) and forward again ──
    expect(at(page)).toBe('/setup-wizard/hsm-setup/softhsm/');
    expect(await browser.shot('hsm-setup')).toEqual([]);
    await submit(page, '#back');
    expect(at(page)).toBe('/setup-wizard/crypto-storage-setup/');
    expect((await lifecycleOf(client)).state).toBe('wizard.cryptoStorage.waiting');
    await page.check('input[name=storageType][value=softhsm]');
    await submit(page, 'button[type=submit]');
    expect(at(page)).toBe('/setup-wizard/hsm-setup/softhsm/');
    expect(await page.inputValue('#modulePath')).toBe('/usr/lib/softhsm/libsofthsm2.so');

    // Each PIN typed twice: a mismatch is shown beside its field and changes nothing.
    const before = (await lifecycleOf(client)).revision;
    await page.fill('#pin', pin);
    await page.fill('#pinConfirm', `${pin}x`);
    await page.fill('#soPin', soPin);
    await page.fill('#soPinConfirm', soPin);
    expect(await submit(page, 'button[type=submit]')).toBe(400);
    expect(await fieldError(page, 'pinConfirm')).toMatch(/differ/);
    await page.fill('#pin', pin);
    await page.fill('#pinConfirm', pin);
    await page.fill('#soPin', soPin);
    await page.fill('#soPinConfirm', `${soPin}x`);
    expect(await submit(page, 'button[type=submit]')).toBe(400);
    expect(await fieldError(page, 'soPinConfirm')).toMatch(/differ/);
    expect((await lifecycleOf(client)).revision).toBe(before);

    // A module that does not load: the error beside the path, and the path not offered again.
    await page.fill('#modulePath', '/usr/lib/no-such-pkcs11.so');
    await fillPins(page);
    expect(await submit(page, 'button[type=submit]')).toBeGreaterThanOrEqual(400);
    expect(await fieldError(page, 'modulePath')).toMatch(/no-such-pkcs11/);
    await browser.shot('hsm-setup-module-error');
    await page.goto(`${server.url}/setup-wizard/hsm-setup/softhsm/`);
    expect(await page.inputValue('#modulePath')).toBe('/usr/lib/softhsm/libsofthsm2.so');
    await fillPins(page);
    await submit(page, 'button[type=submit]');

    // ── set-up mode: fresh; the restore form is there exactly when the machine accepts RESTORE_BACKUP; no way back past the keys ──
    expect(at(page)).toBe('/setup-wizard/setup_mode/');
    await browser.shot('setup-mode');
    const { accepts } = await lifecycleOf(client);
    // (BACK is guarded here: refused under HSM storage, see test/unit/wizard-back-machine.test.ts.)
    expect(await page.$('#back')).toBeNull();
    expect((await page.$('form[action="/setup-wizard/restore/"]')) !== null).toBe(accepts.includes('RESTORE_BACKUP'));
    await submit(page, 'button[value=fresh]');

    // ── TLS credential: the served certificate before the apply ──
    expect(at(page)).toBe('/setup-wizard/select_tls_server_credential/');
    await browser.shot('select-tls');
    const startFingerprint = servedFingerprint(server.port);
    expect(await text(page, '#served-fingerprint')).toBe(startFingerprint);
    expect(server.lastAnnouncedFingerprint).toBe(startFingerprint);
    await Promise.all([page.waitForNavigation(), page.click('#choose-generate')]);
    expect(at(page)).toBe('/setup-wizard/generate-tls-server-credential/');
    await browser.shot('generate-tls');
    await page.fill('#subjectAltNames', 'localhost\n127.0.0.1');
    await submit(page, 'button[type=submit]');

    // ── apply, live: openssl sees the new certificate, the console announces it ──
    expect(at(page)).toBe('/setup-wizard/tls-server-credential-apply/');
    await browser.shot('tls-apply');
    const offered = await text(page, '#offered-fingerprint');
    expect(offered).not.toBe(startFingerprint);
    expect(await text(page, '#served-fingerprint')).toBe(startFingerprint);
    expect(servedFingerprint(server.port)).toBe(startFingerprint);
    await submit(page, '#apply-tls');
    expect(servedFingerprint(server.port)).toBe(offered);
    expect(server.lastAnnouncedFingerprint).toBe(offered);

    // ── backup password: a mismatch shows beside its field and changes nothing ──
    expect(at(page)).toBe('/setup-wizard/backup-password/');
    await browser.shot('backup-password');
    await page.fill('#password', backupPassword);
    await page.fill('#passwordConfirm', `${backupPassword}x`);
    expect(await submit(page, 'button[type=submit]')).toBe(400);
    expect(at(page)).toBe('/setup-wizard/backup-password/');
    expect(await fieldError(page, 'passwordConfirm')).toMatch(/differ/);
    await browser.shot('backup-password-error');
    await page.fill('#password', backupPassword);
    await page.fill('#passwordConfirm', backupPassword);
    await submit(page, 'button[type=submit]');

    // ── recovery shares: optional, skipped here (test/web/recovery-shares.test.ts makes them) ──
    expect(at(page)).toBe('/setup-wizard/recovery-shares/');
    await submit(page, '#skip-recovery-shares');

    // ── demo data, with the visualizer open in a second tab: it follows without a reload ──
    expect(at(page)).toBe('/setup-wizard/demo-data/');
    await browser.shot('demo-data');
    const viewer = await browser.context.newPage();
    await viewer.goto(`${server.url}/inspect`);
    await browser.shot('inspect-during-wizard', viewer);
    expect(await text(viewer, '#current-state')).toBe('wizard.demoData.waiting');
    expect(await viewer.getAttribute('svg.state-graph g.node.current', 'data-state')).toBe('lifecycle.wizard.demoData.waiting');
    let navigations = 0;
    viewer.on('framenavigated', (frame) => {
      if (frame === viewer.mainFrame()) navigations += 1;
    });
    await submit(page, '#skip-demo-data');
    // The whole machine's graph is redrawn too while the top-level overview is the one shown.
    await viewer.waitForSelector('svg.state-graph g.node.current[data-state="lifecycle.wizard.createAdmin.waiting"]', { state: 'attached', timeout: 15_000 });
    expect(await text(viewer, '#current-state')).toBe('wizard.createAdmin.waiting');
    expect(await viewer.$$eval('#accepts span', (spans: Array<{ textContent: string | null }>) => spans.map((s) => s.textContent))).toContain('CREATE_ADMIN');
    expect(await viewer.$$eval('#history tbody tr td:nth-child(3)', (cells: Array<{ textContent: string | null }>) => cells.map((c) => c.textContent))).toEqual(
      expect.arrayContaining(['web', 'effect', 'startup']),
    );
    expect(navigations).toBe(0);
    await browser.shot('inspect-followed', viewer);
    await viewer.close();

    // ── the administrator; then the wizard is closed and the login guards everything ──
    expect(at(page)).toBe('/setup-wizard/create-super-user');
    await browser.shot('create-super-user');
    await page.fill('#username', 'admin');
    await page.fill('#password', adminPassword);
    await page.fill('#passwordConfirm', adminPassword);
    await submit(page, 'button[type=submit]');

    // ── the set-up's summary, also after a reload: the keys as pkcs11-tool sees them, the certificate openssl sees ──
    expect(at(page)).toBe('/summary');
    expect(await browser.shot('summary-setup')).toEqual([]);
    await page.reload();
    const setup = await summaryOf(page);
    expect(setup.title).toBe('Set-up complete');
    expect(setup.token).toContain('Trustpoint-SoftHSM');
    expect(setup.module).toBe('/usr/lib/softhsm/libsofthsm2.so');
    expect(setup.kekLabel).toBe('trustpoint-kek');
    expect(server.kekIdsOnToken(pin)).toEqual([setup.kekId]);
    expect(setup.dekKeyId).toMatch(/^[0-9a-f]{16}$/);
    expect(setup.fingerprint).toBe(servedFingerprint(server.port));
    expect(setup.keepOffline).toMatch(/backup password/);
    expect(setup.keepOffline).toMatch(/SO\) PIN/);
    await submit(page, '#continue');
    expect(at(page)).toBe('/login');
    await logIn(browser, 'admin', adminPassword);

    // ── status: the fingerprint openssl sees, the console printed, the page shows; the start in words ──
    expect(at(page)).toBe('/status');
    expect(await browser.shot('status')).toEqual([]);
    expect(await text(page, '#scenario')).toMatch(/^The last start found an empty database/);
    expect(await text(page, '#scenario-code')).toBe('DB_NOT_INITIALIZED');
    expect(await text(page, '#last-completion h2')).toBe('Last set-up');
    expect(await text(page, '#dek-key-id')).toBe(setup.dekKeyId);
    expect(await text(page, '#storage-type')).toBe('softhsm');
    expect(await text(page, '#token')).toContain('Trustpoint-SoftHSM');
    expect(await text(page, '#kek-label')).toContain('trustpoint-kek');
    expect(await text(page, '#dek-key-id')).toMatch(/^[0-9a-f]{16}$/);
    expect(await text(page, '#backup-password')).toBe('set');
    expect(await text(page, '#tls-fingerprint')).toBe(offered);
    expect(servedFingerprint(server.port)).toBe(offered);

    // ── a device with an EST password ──
    await page.goto(`${server.url}/devices`);
    await browser.shot('devices-empty');
    await page.fill('#name', 'web-device');
    await page.fill('#estPassword', estPassword);
    await submit(page, 'form[action="/devices"] button[type=submit]');
    await browser.shot('devices');
    expect(await page.textContent('tr[data-device="web-device"]')).not.toContain(estPassword);
    await submit(page, 'tr[data-device="web-device"] button[data-reveal=estPassword]');
    expect(await text(page, '#revealed-secret')).toBe(estPassword);
    await browser.shot('device-revealed');

    await page.goto(`${server.url}/inspect`);
    await browser.shot('inspect-operational');
    expect(await page.getAttribute('svg.state-graph g.node.current', 'data-state')).toBe('lifecycle.operational');
    await page.goto(`${server.url}/credentials`);
    await browser.shot('credentials');
    await page.goto(`${server.url}/cas`);
    await browser.shot('cas');
    await submit(page, 'form[action="/logout"] button');
    expect(at(page)).toBe('/login');

    // ── restart with the token directory deleted; a CA whose key was in it ──
    await server.stop();
    server.deleteTokens();
    await server.query((db) => db('cas').insert({ name: 'token-ca', key_location: 'token', token_key_label: 'ca-key', active: true, created_at: new Date().toISOString() }));
    await server.start();
    const temporary = servedFingerprint(server.port);
    expect(temporary).not.toBe(offered);
    expect(server.lastAnnouncedFingerprint).toBe(temporary);

    await page.goto(`${server.url}/`);
    await unlock(browser, await server.setupCode());
    expect(at(page)).toBe('/setup-wizard/auto-restore-hsm-setup/softhsm/');
    expect(await browser.shot('auto-restore-hsm-setup')).toEqual([]);
    expect(await page.inputValue('#label')).toBe('Trustpoint-SoftHSM');
    await fillPins(page);
    await submit(page, 'button[type=submit]');

    // ── a wrong password, then the right one ──
    expect(at(page)).toBe('/setup-wizard/auto_restore_password/');
    await browser.shot('auto-restore-password');
    await page.fill('#password', wrongPassword);
    expect(await submit(page, 'button[type=submit]')).toBe(400);
    expect(await fieldError(page, 'password')).toMatch(/wrong/);
    expect(await text(page, '#failures')).toMatch(/^1 wrong password/);
    await browser.shot('auto-restore-wrong-password');
    await page.fill('#password', backupPassword);
    await submit(page, 'button[type=submit]');

    // The stored credential is served again, swapped live.
    expect(servedFingerprint(server.port)).toBe(offered);
    expect(server.lastAnnouncedFingerprint).toBe(offered);

    // ── the recovery's summary: every stored secret value checked, the lost token's CA deactivated ──
    expect(at(page)).toBe('/summary');
    expect(await browser.shot('summary-token-loss')).toEqual([]);
    const tokenLoss = await summaryOf(page);
    expect(tokenLoss.title).toBe('Recovery complete');
    expect(tokenLoss.fingerprint).toBe(offered);
    expect(server.kekIdsOnToken(pin)).toEqual([tokenLoss.kekId]);
    expect(tokenLoss.kekId).not.toBe(setup.kekId);
    expect(tokenLoss.dekKeyId).toBe(setup.dekKeyId);
    expect(tokenLoss.valuesChecked).toBe(`${await storedSecretValues()} secret values checked, all readable.`);
    expect(tokenLoss.deactivated).toEqual(['token-ca']);

    // ── log in and see the EST password unchanged ──
    await submit(page, '#continue');
    expect(at(page)).toBe('/login');
    await logIn(browser, 'admin', adminPassword);
    expect(at(page)).toBe('/status');
    await browser.shot('status-after-restore');
    expect(await text(page, '#tls-fingerprint')).toBe(offered);
    expect(await text(page, '#last-completion h2')).toBe('Last recovery');
    expect(await text(page, '#last-values-checked')).toMatch(/^\d+ checked, all readable$/);
    await page.goto(`${server.url}/devices`);
    await submit(page, 'tr[data-device="web-device"] button[data-reveal=estPassword]');
    expect(await text(page, '#revealed-secret')).toBe(estPassword);
    await browser.shot('device-revealed-after-restore');

    // ── the KEK destroyed behind keyward's back (the token stays): auto-restore with the password alone ──
    await submit(page, 'form[action="/logout"] button');
    await server.stop();
    server.pkcs11Tool(['--token-label', 'Trustpoint-SoftHSM', '--login', '--pin', 'env:KW_TEST_PIN', '--delete-object', '--type', 'secrkey', '--label', 'trustpoint-kek'], pin);
    expect(server.kekIdsOnToken(pin)).toEqual([]);
    await server.start();
    await page.goto(`${server.url}/`);
    await unlock(browser, await server.setupCode());
    expect(at(page)).toBe('/setup-wizard/auto_restore_password/');
    await page.fill('#password', backupPassword);
    await submit(page, 'button[type=submit]');
    expect(at(page)).toBe('/summary');
    expect(await browser.shot('summary-kek-loss')).toEqual([]);
    const kekLoss = await summaryOf(page);
    expect(kekLoss.title).toBe('Recovery complete');
    expect(server.kekIdsOnToken(pin)).toEqual([kekLoss.kekId]);
    expect(kekLoss.kekId).not.toBe(tokenLoss.kekId);
    expect(kekLoss.fingerprint).toBe(servedFingerprint(server.port));
    expect(kekLoss.fingerprint).toBe(offered);
    expect(kekLoss.valuesChecked).toBe(`${await storedSecretValues()} secret values checked, all readable.`);
    expect(kekLoss.deactivated).toEqual([]);

    expect(browser.screenshots).toBeGreaterThanOrEqual(50);
    // Every page of the walk, at 1280 px and at 390 px: no text outside its box.
    expect(browser.overflows).toEqual([]);
  });
});
