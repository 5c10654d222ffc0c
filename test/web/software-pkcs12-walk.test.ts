import { testDir } from '../support/run-dir';
import { newSecret } from '../support/secrets';
import { Browser, pathOf } from './support/browser';
import { KeywardServer } from './support/keyward-server';
import { fieldError, logIn, submit, text, unlock } from './support/pages';
import { makePkcs12 } from './support/pkcs12';
import { certificateFingerprint, servedFingerprint } from './support/tls-probe';

jest.setTimeout(240_000);

/**
 * The whole software-storage install in Chromium, with the TLS server credential imported from a
 * PKCS#12 file that openssl made: a wrong file password first (shown beside its field, nothing
 * changed), then the right one; after the apply openssl s_client sees exactly that certificate.
 */
describe('web: software storage wizard with a PKCS#12 import in a browser', () => {
  const server = new KeywardServer('software-walk');
  const pkcs12Password = `P12-${newSecret('p12')}`;
  const adminPassword = `Ad-${newSecret('admin')}`;
  let browser: Browser;

  beforeAll(async () => {
    await server.start();
    browser = await Browser.launch('software-walk');
  });

  afterAll(async () => {
    await browser?.close();
    await server.stop();
    if (browser) process.stdout.write(`web: ${browser.screenshots} screenshots of the software walk in ${browser.shots}\n`);
  });

  it('imports the PKCS#12 credential and serves it live', async () => {
    const page = browser.page;
    const { pkcs12, certificate } = makePkcs12(testDir('pkcs12'), pkcs12Password);
    const imported = certificateFingerprint(certificate);

    await page.goto(`${server.url}/`);
    await unlock(browser, await server.setupCode());

    expect(pathOf(page)).toBe('/setup-wizard/crypto-storage-setup/');
    expect(await page.textContent('.warning')).toMatch(/plaintext/);
    await page.check('input[name=storageType][value=software]');
    await browser.shot('crypto-storage-software');
    await submit(page, 'button[type=submit]');

    expect(pathOf(page)).toBe('/setup-wizard/setup_mode/');
    expect(await browser.shot('setup-mode')).toEqual([]);
    await submit(page, 'button[value=fresh]');

    expect(pathOf(page)).toBe('/setup-wizard/select_tls_server_credential/');
    await browser.shot('select-tls');
    const before = servedFingerprint(server.port);
    expect(await text(page, '#served-fingerprint')).toBe(before);
    await Promise.all([page.waitForNavigation(), page.click('#choose-pkcs12')]);

    // A wrong password: the error beside its field, the machine still at the credential step.
    expect(pathOf(page)).toBe('/setup-wizard/import-tls-server-credential/');
    await browser.shot('import-tls');
    await page.setInputFiles('#pkcs12File', pkcs12);
    await page.fill('#pkcs12Password', `${pkcs12Password}-wrong`);
    expect(await submit(page, '#pkcs12-form button[type=submit]')).toBe(400);
    expect(await fieldError(page, 'pkcs12Password')).toMatch(/password is wrong/);
    await browser.shot('import-tls-wrong-password');
    await page.goto(`${server.url}/setup-wizard/tls-server-credential-apply/`);
    expect(pathOf(page)).toBe('/setup-wizard/select_tls_server_credential/');

    await page.goto(`${server.url}/setup-wizard/import-tls-server-credential/`);
    await page.setInputFiles('#pkcs12File', pkcs12);
    await page.fill('#pkcs12Password', pkcs12Password);
    await submit(page, '#pkcs12-form button[type=submit]');

    expect(pathOf(page)).toBe('/setup-wizard/tls-server-credential-apply/');
    await browser.shot('tls-apply');
    expect(await text(page, '#offered-fingerprint')).toBe(imported);
    expect(servedFingerprint(server.port)).toBe(before);
    await submit(page, '#apply-tls');
    expect(servedFingerprint(server.port)).toBe(imported);
    expect(server.lastAnnouncedFingerprint).toBe(imported);

    // Software storage has no backup password step.
    expect(pathOf(page)).toBe('/setup-wizard/demo-data/');
    await browser.shot('demo-data');
    await submit(page, '#add-demo-data');

    expect(pathOf(page)).toBe('/setup-wizard/create-super-user');
    await browser.shot('create-super-user');
    await page.fill('#username', 'operator');
    await page.fill('#password', 'short');
    await page.fill('#passwordConfirm', 'short');
    // The browser's own minlength check would stop this form; the server's rule is what is tested.
    await page.$eval('#password', (input: { removeAttribute(name: string): void }) => input.removeAttribute('minlength'));
    expect(await submit(page, 'button[type=submit]')).toBe(400);
    expect(await fieldError(page, 'password')).toMatch(/at least 12 characters/);
    await browser.shot('create-super-user-weak');
    await page.fill('#password', adminPassword);
    await page.fill('#passwordConfirm', adminPassword);
    await submit(page, 'button[type=submit]');

    // The summary: software storage keeps no key apart from the database.
    expect(pathOf(page)).toBe('/summary');
    expect(await browser.shot('summary-software')).toEqual([]);
    expect(await text(page, '#summary-storage')).toMatch(/^software/);
    expect(await page.$('#summary-kek-id')).toBeNull();
    await submit(page, '#continue');
    expect(pathOf(page)).toBe('/login');
    await logIn(browser, 'operator', adminPassword);
    expect(pathOf(page)).toBe('/status');
    await browser.shot('status');
    expect(await text(page, '#storage-type')).toBe('software');
    expect(await page.textContent('main')).toMatch(/plaintext/);
    expect(await text(page, '#tls-fingerprint')).toBe(imported);

    await page.goto(`${server.url}/devices`);
    await browser.shot('devices-demo');
    expect(await page.$$('tr[data-device]')).toHaveLength(2);
    await page.goto(`${server.url}/credentials`);
    await browser.shot('credentials');
    expect(await page.textContent('main')).toContain('demo-issuing-ca');
    await page.goto(`${server.url}/cas`);
    await browser.shot('cas');
    expect(await text(page, 'tr[data-ca="demo-issuing-ca"] td:nth-child(3)')).toBe('active');
    await page.goto(`${server.url}/inspect`);
    await browser.shot('inspect');
    expect(await page.$$('svg.state-graph g.node')).not.toHaveLength(0);
    expect(await page.getAttribute('svg.state-graph g.node.current', 'data-state')).toBe('lifecycle.operational');
    expect(await text(page, '#current-state')).toBe('operational');

    // The wizard is closed now, for the browser too.
    await page.goto(`${server.url}/setup-wizard/crypto-storage-setup/`);
    expect(pathOf(page)).toBe('/status');
    // The error page, as a mistyped address meets it.
    expect((await page.goto(`${server.url}/no-such-page`))?.status()).toBe(404);
    await browser.shot('not-found');
    // Every page of the walk, at 1280 px and at 390 px: no text outside its box.
    expect(browser.overflows).toEqual([]);
  });
});
