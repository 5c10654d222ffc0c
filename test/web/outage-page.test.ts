import { execFileSync } from 'node:child_process';
import { TOKEN_LABEL } from '../support/install';
import { newSecret } from '../support/secrets';
import { SoftHsm } from '../support/softhsm';
import { Browser, pathOf } from './support/browser';
import { unlock, walkWizard } from './support/http-wizard';
import { KeywardServer } from './support/keyward-server';
import { logIn, submit, text } from './support/pages';
import { lifecycleOf, WebClient } from './support/web-client';

jest.setTimeout(180_000);

/**
 * The outage page of a physical HSM out of reach, in Chromium: the next automatic retry's time, the
 * navigation without the pages that would only redirect, and "the token is lost: recover" with its
 * confirmation, which leads an administrator into auto-restore (DECLARE_TOKEN_LOST).
 */
describe('web: the outage page', () => {
  const hsm = new SoftHsm('outage-page');
  // The retry is far off: the page is read while it waits.
  const server = new KeywardServer('outage-page', { SOFTHSM2_CONF: hsm.conf, KEYWARD_OUTAGE_RETRY_SECONDS: '900' });
  const adminPassword = `Ad-${newSecret('admin')}`;
  let browser: Browser;

  afterAll(async () => {
    await browser?.close();
    await server.stop();
  });

  it('shows when the next retry runs, and lets an administrator declare the token lost and recover', async () => {
    await server.start();
    // A physical HSM's token is made with the vendor's tools, never by keyward.
    const token = hsm.initToken(TOKEN_LABEL);
    const wizard = new WebClient(server.url);
    await unlock(wizard, await server.setupCode());
    await walkWizard(wizard, 'physical_hsm', { pin: token.pin, soPin: '', backupPassword: `Bk-${newSecret('backup')}`, adminPassword });

    // The token goes out of reach (a network HSM down) before the server starts again.
    await server.stop();
    execFileSync('mv', [hsm.tokenDir, `${hsm.tokenDir}.away`]);
    execFileSync('mkdir', ['-p', hsm.tokenDir]);
    const started = Date.now();
    await server.start();
    const client = new WebClient(server.url);
    expect((await lifecycleOf(client)).state).toBe('outage.waiting');

    browser = await Browser.launch('outage-page');
    const page = browser.page;
    await page.goto(`${server.url}/`);
    expect(pathOf(page)).toBe('/lifecycle');
    expect(await browser.shot('outage-visitor')).toEqual([]);
    const nextAt = Date.parse((await page.getAttribute('#next-retry time', 'datetime'))!);
    expect(nextAt).toBeGreaterThanOrEqual(started + 899_000);
    expect(nextAt).toBeLessThanOrEqual(Date.now() + 900_000);
    // A visitor is told who can recover, not given the form.
    expect(await page.$('#declare-lost')).toBeNull();

    await page.goto(`${server.url}/login?next=/lifecycle`);
    await logIn(browser, 'admin', adminPassword);
    expect(pathOf(page)).toBe('/lifecycle');
    expect(await browser.shot('outage-admin')).toEqual([]);
    // The navigation offers no operations page (each would only redirect here).
    const links = await page.$$eval('header nav a', (anchors: Array<{ getAttribute(name: string): string | null }>) => anchors.map((a) => a.getAttribute('href')));
    expect(links).toEqual(['/', '/inspect']);
    expect(await text(page, '#declare-lost h2')).toBe('The token is lost: recover');

    // Unconfirmed: refused beside the box, nothing changed.
    const { revision } = await lifecycleOf(client);
    await page.$eval('#confirm-lost', (box: { removeAttribute(name: string): void }) => box.removeAttribute('required'));
    expect(await submit(page, '#declare-lost-submit')).toBe(400);
    expect(await text(page, '#confirm-error')).toMatch(/confirm/);
    expect((await lifecycleOf(client)).revision).toBe(revision);

    await page.check('#confirm-lost');
    await submit(page, '#declare-lost-submit');
    expect(pathOf(page)).toBe('/setup-wizard/auto-restore-hsm-setup/physical/');
    const after = await lifecycleOf(client);
    expect(after.state).toBe('autoRestore.hsmSetup.waiting');
    const history = await server.query((db) => db('transition_log').where({ event_type: 'DECLARE_TOKEN_LOST' }).pluck('source'));
    expect(history).toEqual(['web:admin']);
  });
});
