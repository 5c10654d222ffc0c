import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { openDatabase } from '../../db/database';
import { deviceAuditEntryOf, type DeviceAuditRow, verifyDeviceAudit } from '../../db/device-audit';
import { testDir } from '../support/run-dir';
import { newSecret, registerSecret } from '../support/secrets';
import { Browser, pathOf } from './support/browser';
import { KeywardServer } from './support/keyward-server';
import { fieldError, logIn, submit, text, unlock } from './support/pages';
import { makePkcs12 } from './support/pkcs12';
import { csrfToken, WebClient } from './support/web-client';

jest.setTimeout(240_000);

/**
 * Issue 14, deliverables 4 and 5 in Chromium (time zone Asia/Tokyo): errors as sentences with the
 * form's labels and their code small; the TLS apply page's warnings (names missed, an end within
 * 30 days); a device renamed, its secrets replaced and regenerated, deleted after a confirmation
 * page, each an audit entry without a value; the login lockout's end in local time.
 */
describe('web: devices and plain messages', () => {
  const server = new KeywardServer('devices-messages');
  const pin = newSecret('pin');
  const soPin = newSecret('sopin');
  const backupPassword = `Bk-${newSecret('backup')}`;
  const adminPassword = `Ad-${newSecret('admin')}`;
  const pkcs12Password = `P12-${newSecret('p12')}`;
  const estPassword = newSecret('est');
  const cmpSecret = newSecret('cmp');
  const newEstPassword = newSecret('est-new');
  const overflows: string[] = [];
  let browser: Browser;

  beforeAll(async () => {
    await server.start();
    browser = await Browser.launch('devices-messages', { timezoneId: 'Asia/Tokyo' });
  });

  afterAll(async () => {
    await browser?.close();
    await server.stop();
  });

  const shoot = async (name: string, page: Page = browser.page) => overflows.push(...(await browser.shot(name, page)));
  /** Fills the field and, where the form asks for it twice, its "…Confirm" twin. */
  const fillTwice = async (page: Page, id: string, value: string) => {
    await page.fill(`#${id}`, value);
    if (await page.$(`#${id}Confirm`)) await page.fill(`#${id}Confirm`, value);
  };
  const errorCode = async (page: Page, field: string) => text(page, `#${field}-error .error-code`);

  it('says errors in sentences with labels, and warns before a TLS credential that misses the host or ends soon', async () => {
    const page = browser.page;
    await page.goto(`${server.url}/`);
    await unlock(browser, await server.setupCode());
    await page.check('input[name=storageType][value=softhsm]');
    await submit(page, 'button[type=submit]');

    // A relative module path: the message names the field by its label, the code is a detail.
    expect(pathOf(page)).toBe('/setup-wizard/hsm-setup/softhsm/');
    await page.fill('#modulePath', 'libsofthsm2.so');
    await fillTwice(page, 'pin', pin);
    await fillTwice(page, 'soPin', soPin);
    expect(await submit(page, 'button[type=submit]')).toBe(400);
    expect(await fieldError(page, 'modulePath')).toMatch(/^PKCS#11 module path must be an absolute path to a PKCS#11 library/);
    expect(await fieldError(page, 'modulePath')).not.toMatch(/modulePath/);
    expect(await errorCode(page, 'modulePath')).toMatch(/^\(code [A-Z_]+\)$/);

    // A PIN longer than the token allows: the token's own limit, in a sentence.
    await page.fill('#modulePath', '/usr/lib/softhsm/libsofthsm2.so');
    await fillTwice(page, 'pin', `${pin}${'p'.repeat(300)}`);
    await fillTwice(page, 'soPin', soPin);
    expect(await submit(page, 'button[type=submit]')).toBe(400);
    expect(await fieldError(page, 'pin')).toMatch(/^The user PIN is longer than this token allows \(at most \d+ characters\)\. Nothing was changed on the token "Trustpoint-SoftHSM"\./);
    expect(await errorCode(page, 'pin')).toBe('(code PIN_TOO_LONG)');
    await shoot('hsm-setup-pin-too-long');

    await fillTwice(page, 'pin', pin);
    await fillTwice(page, 'soPin', soPin);
    await submit(page, 'button[type=submit]');
    expect(pathOf(page)).toBe('/setup-wizard/setup_mode/');
    await submit(page, 'button[value=fresh]');

    // A credential for another host: a warning names the hosts it misses, before it is applied.
    const importCredential = async (dir: string, options: { subjectAltName?: string; days?: number }) => {
      const { pkcs12 } = makePkcs12(testDir(dir), pkcs12Password, options);
      expect(pathOf(page)).toBe('/setup-wizard/select_tls_server_credential/');
      await Promise.all([page.waitForNavigation(), page.click('#choose-pkcs12')]);
      await page.setInputFiles('#pkcs12File', pkcs12);
      await page.fill('#pkcs12Password', pkcs12Password);
      await submit(page, '#pkcs12-form button[type=submit]');
      expect(pathOf(page)).toBe('/setup-wizard/tls-server-credential-apply/');
    };
    await importCredential('tls-other-host', { subjectAltName: 'DNS:other.example', days: 365 });
    expect(await text(page, '#tls-warning-0')).toBe(
      'This certificate does not name “127.0.0.1” (the name this browser uses for keyward now), “localhost”: browsers that reach keyward by those names will refuse the connection after it is applied.',
    );
    expect(await page.$('#tls-warning-1')).toBeNull();
    await shoot('tls-apply-wrong-host');
    await submit(page, '#cancel-tls');

    // One that covers the host but ends in 20 days.
    await importCredential('tls-short-lived', { days: 20 });
    expect(await text(page, '#tls-warning-0')).toMatch(/^This certificate expires on \d{4}-\d\d-\d\d \(in (19|20) days\): plan its replacement now\.$/);
    expect(await page.$('#tls-warning-1')).toBeNull();
    await shoot('tls-apply-expiring');
    await submit(page, '#apply-tls');

    expect(pathOf(page)).toBe('/setup-wizard/backup-password/');
    await page.fill('#password', backupPassword);
    await page.fill('#passwordConfirm', backupPassword);
    await submit(page, 'button[type=submit]');
    await submit(page, '#skip-recovery-shares');
    await submit(page, '#skip-demo-data');
    await page.fill('#username', 'admin');
    await page.fill('#password', adminPassword);
    await page.fill('#passwordConfirm', adminPassword);
    await submit(page, 'button[type=submit]');
    expect(pathOf(page)).toBe('/summary');
    await page.goto(`${server.url}/login`);
    await logIn(browser, 'admin', adminPassword);
    expect(pathOf(page)).toBe('/status');
    expect(overflows).toEqual([]);
  });

  it('renames a device, replaces and regenerates its secrets, deletes it after asking; each change audited, never a value', async () => {
    const page = browser.page;
    await page.goto(`${server.url}/devices`);

    // A secret too long: the label, not `estPassword`.
    await page.fill('#name', 'router-1');
    // Past the field's maxlength, as a client that ignores it would send.
    await page.$eval('#estPassword', (input: { removeAttribute(name: string): void }) => input.removeAttribute('maxlength'));
    await page.fill('#estPassword', 'e'.repeat(129));
    expect(await submit(page, '#add-device')).toBe(400);
    expect(await fieldError(page, 'estPassword')).toMatch(/^EST password is longer than 128 characters\./);
    await page.fill('#name', 'router-1');
    await page.fill('#estPassword', estPassword);
    await page.fill('#cmpSharedSecret', cmpSecret);
    await submit(page, '#add-device');
    await Promise.all([page.waitForNavigation(), page.click('tr[data-device="router-1"] a')]);
    const devicePath = pathOf(page);
    expect(devicePath).toMatch(/^\/devices\/\d+$/);

    // A name taken by another device is refused in a sentence; then the rename.
    await page.goto(`${server.url}/devices`);
    await page.fill('#name', 'switch-1');
    await submit(page, '#add-device');
    await page.goto(`${server.url}${devicePath}`);
    await page.fill('#name', 'switch-1');
    expect(await submit(page, '#save-name')).toBe(400);
    expect(await fieldError(page, 'name')).toMatch(/^A device named "switch-1" exists already\./);
    await page.fill('#name', 'router-2');
    await submit(page, '#save-name');
    expect(await text(page, '#device-notice')).toBe('Name saved.');

    // Replace the EST password with a typed one; regenerate the CMP secret: shown once.
    await page.fill('#estPassword', newEstPassword);
    await submit(page, '#replace-estPassword');
    expect(await text(page, '#device-notice')).toBe('The EST password was replaced.');
    await submit(page, '#regenerate-cmpSharedSecret');
    const regenerated = await text(page, '#shown-secret');
    registerSecret(regenerated);
    expect(regenerated).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(regenerated).not.toBe(cmpSecret);
    await shoot('device-regenerated');
    await page.goto(`${server.url}${devicePath}`);
    expect(await page.$('#shown-secret')).toBeNull();
    expect(await page.$$eval('#device-audit tbody tr', (rows: Array<{ getAttribute(name: string): string | null }>) => rows.map((row) => row.getAttribute('data-action')))).toEqual([
      'cmpSharedSecret regenerated',
      'estPassword replaced',
      'renamed',
      'created',
    ]);
    expect(await text(page, '#device-audit tbody tr[data-action=renamed]')).toMatch(/web:admin\s+renamed\s+from “router-1” to “router-2”/);
    await shoot('device');

    // The reveal shows the new values (the sealed fields were written).
    await page.goto(`${server.url}/devices`);
    await submit(page, 'tr[data-device="router-2"] button[data-reveal=estPassword]');
    expect(await text(page, '#revealed-secret')).toBe(newEstPassword);
    await page.goto(`${server.url}/devices`);
    await submit(page, 'tr[data-device="router-2"] button[data-reveal=cmpSharedSecret]');
    expect(await text(page, '#revealed-secret')).toBe(regenerated);

    // Delete: the device page links to a confirmation page; only its form deletes.
    await page.goto(`${server.url}${devicePath}`);
    await Promise.all([page.waitForNavigation(), page.click('#delete-device')]);
    expect(pathOf(page)).toBe(`${devicePath}/delete`);
    await shoot('device-delete');
    await Promise.all([page.waitForNavigation(), page.click('#cancel-delete')]);
    expect(pathOf(page)).toBe(devicePath);
    await Promise.all([page.waitForNavigation(), page.click('#delete-device')]);
    await submit(page, '#confirm-delete');
    expect(pathOf(page)).toBe('/devices');
    expect(await text(page, '#deleted-notice')).toBe('Device “router-2” deleted.');
    expect(await page.$('tr[data-device="router-2"]')).toBeNull();
    expect(await page.$$eval('#device-audit tbody tr', (rows: Array<{ getAttribute(name: string): string | null }>) => rows.map((row) => row.getAttribute('data-action')))).toEqual([
      'deleted',
      'cmpSharedSecret regenerated',
      'estPassword replaced',
      'renamed',
      'created',
      'created',
    ]);
    await shoot('devices');
    expect((await page.goto(`${server.url}${devicePath}`))?.status()).toBe(404);

    // The audit table directly: a chain that verifies, and no value of any secret in any column.
    const db = openDatabase({ client: 'sqlite', filename: join(server.home, 'keyward.sqlite') });
    try {
      const rows = await db<DeviceAuditRow>('device_audit').orderBy('seq').select();
      const entries = rows.map(deviceAuditEntryOf);
      expect(verifyDeviceAudit(entries)).toEqual({ ok: true, entries: 6, firstBroken: null });
      const dump = JSON.stringify(rows);
      for (const secret of [estPassword, cmpSecret, newEstPassword, regenerated]) expect(dump).not.toContain(secret);
      // Tampering shows: an entry's actor edited in place breaks the chain there.
      // An entry edited in the database: the devices page says where the chain breaks.
      await page.goto(`${server.url}/devices`);
      expect(await text(page, '#audit-verdict')).toBe("The audit trail's hash chain is intact (6 entries).");
      await db('device_audit').where({ seq: 3 }).update({ actor: 'web:nobody' });
      await page.reload();
      expect(await text(page, '#audit-verdict')).toMatch(/^The audit trail's hash chain is broken at entry 3: entry 3 was altered/);
      await db('device_audit').where({ seq: 3 }).update({ actor: entries[2]!.actor });
    } finally {
      await db.destroy();
    }
    const log = readFileSync(server.logPath, 'utf8');
    for (const secret of [estPassword, cmpSecret, newEstPassword, regenerated]) expect(log).not.toContain(secret);
    expect(log).toMatch(/device secret changed/);
    expect(overflows).toEqual([]);
  });

  it('shows the end of a login lockout in the browser’s time zone, counting down', async () => {
    const page = browser.page;
    await browser.context.clearCookies();
    await page.goto(`${server.url}/login`);
    expect(pathOf(page)).toBe('/login');
    // Nine failures over HTTP, the tenth in the browser: it locks the account.
    const client = new WebClient(server.url);
    const token = csrfToken((await client.get('/login')).body)!;
    for (let i = 0; i < 9; i++) expect((await client.post('/login', { _csrf: token, username: 'admin', password: `wrong-${i}` })).status).toBe(401);
    await page.fill('#username', 'admin');
    await page.fill('#password', 'wrong-again');
    const [answer] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    expect(answer?.status()).toBe(401);
    const html = (await answer?.text()) ?? '';
    const until = await page.getAttribute('#lock-countdown', 'data-until');
    // The time of day in Tokyo, in 24- or 12-hour form as the browser's locale has it.
    const inTokyo = (hour12: boolean) => new Date(Date.parse(until!)).toLocaleTimeString('en-US', { timeZone: 'Asia/Tokyo', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12 });
    const shown = await text(page, '#lock-countdown');
    expect(shown).toMatch(/^The account is locked until .+ \(Asia\/Tokyo time\): \d+:\d\d left\.$/);
    expect([inTokyo(false), inTokyo(true)].some((time) => shown.includes(time))).toBe(true);
    expect(shown).not.toContain(until!.slice(11, 19));
    // The count goes down.
    const deadline = Date.now() + 5_000;
    while ((await text(page, '#lock-countdown')) === shown && Date.now() < deadline) await page.waitForTimeout(200);
    expect(await text(page, '#lock-countdown')).not.toBe(shown);
    await shoot('login-locked');
    // Without the script, the server's own words: the same moment in UTC.
    expect(html).toMatch(new RegExp(`id="lock-countdown"[^>]*>The account is locked until ${until!.slice(0, 10)} ${until!.slice(11, 19)} UTC\\.`));
    expect(overflows).toEqual([]);
  });
});
