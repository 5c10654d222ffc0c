import type { Page } from 'playwright-core';
import { newSecret, registerSecret } from '../support/secrets';
import { Browser, pathOf } from './support/browser';
import { KeywardServer } from './support/keyward-server';
import { fieldError, logIn, submit, text, unlock } from './support/pages';
import { servedFingerprint } from './support/tls-probe';
import { lifecycleOf, WebClient } from './support/web-client';

jest.setTimeout(300_000);

/**
 * Recovery shares in Chromium on a SoftHSM install (issue 15): 3-of-5 shares made in the wizard step
 * and again on the Keys page (the first set stops working), one verified; then the token is lost and
 * auto-restore takes three shares typed in two browser contexts — a typo refused at entry, a share of
 * the old set refused and counted, two shares not enough — and every secret comes back, the backup
 * password never given.
 */
describe('web: recovery shares', () => {
  const server = new KeywardServer('recovery-shares');
  const pin = newSecret('pin');
  const soPin = newSecret('sopin');
  const backupPassword = `Bk-${newSecret('backup')}`;
  const adminPassword = `Ad-${newSecret('admin')}`;
  const estPassword = newSecret('est');
  const cmpSecret = newSecret('cmp');
  let first: Browser;
  let second: Browser | undefined;
  const overflows: string[] = [];

  beforeAll(async () => {
    await server.start();
    first = await Browser.launch('recovery-shares-1');
  });

  afterAll(async () => {
    await second?.close();
    await first?.close();
    await server.stop();
    if (first) process.stdout.write(`web: ${first.screenshots + (second?.screenshots ?? 0)} screenshots of recovery shares in ${first.shots} and ${second?.shots ?? '-'}\n`);
  });

  const shots = async (browser: Browser, name: string, page: Page = browser.page) => overflows.push(...(await browser.shot(name, page)));

  /** The shares of the page that made them, registered for the end-of-run secret scan. */
  async function sharesOnPage(page: Page): Promise<string[]> {
    const shares = await page.$$eval('#shares code.share', (codes: Array<{ textContent: string | null }>) => codes.map((code) => (code.textContent ?? '').trim().split(/\s+/).join('-')));
    for (const share of shares) {
      registerSecret(share);
      registerSecret(share.replace(/-/g, ''));
    }
    return shares;
  }

  /** One changed character: what a holder's typo looks like. */
  const typo = (share: string) => `${share.slice(0, 30)}${share[30] === 'A' ? 'B' : 'A'}${share.slice(31)}`;

  async function enterShare(page: Page, share: string): Promise<number> {
    await page.fill('#share', share);
    return submit(page, '#submit-share');
  }

  it('makes shares in the wizard and on the Keys page, and recovers with three of them after a token loss', async () => {
    const page = first.page;
    await page.goto(`${server.url}/`);
    await unlock(first, await server.setupCode());
    await page.check('input[name=storageType][value=softhsm]');
    await submit(page, 'button[type=submit]');
    await page.fill('#pin', pin);
    await page.fill('#pinConfirm', pin);
    await page.fill('#soPin', soPin);
    await page.fill('#soPinConfirm', soPin);
    await submit(page, 'button[type=submit]');
    await submit(page, 'button[value=fresh]');
    await Promise.all([page.waitForNavigation(), page.click('#choose-generate')]);
    await page.fill('#subjectAltNames', 'localhost\n127.0.0.1');
    await submit(page, 'button[type=submit]');
    await submit(page, '#apply-tls');
    const fingerprint = servedFingerprint(server.port);
    await page.fill('#password', backupPassword);
    await page.fill('#passwordConfirm', backupPassword);
    await submit(page, 'button[type=submit]');

    // ── the optional wizard step ──
    expect(pathOf(page)).toBe('/setup-wizard/recovery-shares/');
    await shots(first, 'wizard-recovery-shares');
    await page.fill('#shares', '3');
    await page.fill('#threshold', '4');
    expect(await submit(page, '#create-recovery-shares')).toBe(400);
    expect(await fieldError(page, 'threshold')).toMatch(/must not exceed the number of shares/);
    await page.fill('#shares', '5');
    await page.fill('#threshold', '3');
    expect(await submit(page, '#create-recovery-shares')).toBe(200);
    await shots(first, 'wizard-recovery-shares-made');
    const old = await sharesOnPage(page);
    expect(old).toHaveLength(5);
    expect(await text(page, '#share-threshold')).toBe('3 of 5 shares');
    await submit(page, '#continue');
    expect(pathOf(page)).toBe('/setup-wizard/demo-data/');
    await submit(page, '#skip-demo-data');
    await page.fill('#username', 'admin');
    await page.fill('#password', adminPassword);
    await page.fill('#passwordConfirm', adminPassword);
    await submit(page, 'button[type=submit]');
    // The set-up ends on its summary; the login is one link away.
    expect(pathOf(page)).toBe('/summary');
    await page.goto(`${server.url}/login`);
    await logIn(first, 'admin', adminPassword);

    await page.goto(`${server.url}/devices`);
    await page.fill('#name', 'shares-device');
    await page.fill('#estPassword', estPassword);
    await page.fill('#cmpSharedSecret', cmpSecret);
    await submit(page, 'form[action="/devices"] button[type=submit]');

    // ── the Keys page: the set, then a new one (the old set stops working), and a share verified ──
    await page.goto(`${server.url}/keys`);
    const oldSetId = await text(page, '#recovery-share-set .mono');
    expect(await text(page, '#recovery-share-set')).toContain('3 of 5 shares');
    await Promise.all([page.waitForNavigation(), page.click('#manage-recovery-shares')]);
    expect(pathOf(page)).toBe('/keys/recovery-shares');
    await shots(first, 'keys-recovery-shares');
    await page.fill('#share', old[3]!);
    expect(await submit(page, '#verify-share')).toBe(200);
    expect(await text(page, '#verified')).toBe(`Share 4 of 5 belongs to share set ${oldSetId} (3 are needed to recover).`);
    await page.check('#confirm-shares');
    expect(await submit(page, '#create-recovery-shares')).toBe(200);
    const shares = await sharesOnPage(page);
    const setId = await text(page, '#share-set-id');
    expect(setId).not.toBe(oldSetId);
    await submit(page, '#continue');
    expect(pathOf(page)).toBe('/keys');
    await page.goto(`${server.url}/keys/recovery-shares`);
    await page.fill('#share', old[3]!);
    expect(await submit(page, '#verify-share')).toBe(403);
    expect(await fieldError(page, 'share')).toContain(`belongs to share set ${oldSetId}, not to the current share set ${setId}`);
    await page.fill('#share', typo(shares[0]!));
    expect(await submit(page, '#verify-share')).toBe(400);
    expect(await fieldError(page, 'share')).toMatch(/typo: its checksum does not match/);
    await shots(first, 'keys-recovery-shares-typo');
    await submit(page, 'form[action="/logout"] button');

    // ── the token is lost with the container ──
    await server.stop();
    server.deleteTokens();
    await server.start();
    await page.goto(`${server.url}/`);
    await unlock(first, await server.setupCode());
    await page.fill('#pin', pin);
    await page.fill('#pinConfirm', pin);
    await page.fill('#soPin', soPin);
    await page.fill('#soPinConfirm', soPin);
    await submit(page, 'button[type=submit]');
    expect(pathOf(page)).toBe('/setup-wizard/auto_restore_password/');
    await shots(first, 'auto-restore-shares');
    expect(await text(page, '#shares-collected')).toBe('0 of 3 shares are in.');
    expect(await text(page, '#shares-memory')).toMatch(/only in the memory of this keyward process .* never stored:\s+they are forgotten 15 minutes after the first one or when keyward restarts/s);

    // A typo is refused at entry and counts for nothing; a share of the old set is refused and counts.
    expect(await enterShare(page, typo(shares[0]!))).toBe(400);
    expect(await fieldError(page, 'share')).toMatch(/^This share has a typo: its checksum does not match/);
    await shots(first, 'auto-restore-share-typo');
    expect(await page.$('#failures')).toBeNull();
    expect(await enterShare(page, old[0]!)).toBe(400);
    expect(await fieldError(page, 'share')).toContain(`belongs to share set ${oldSetId}, not to the current share set ${setId}`);
    expect(await text(page, '#failures')).toMatch(/^1 wrong password\(s\) or share\(s\)/);

    // The first holder's share; a second holder opens the page in a browser of their own, logged in as an administrator.
    expect(await enterShare(page, shares[0]!)).toBe(200);
    expect(await text(page, '#share-entered')).toBe('Share 1 was accepted.');
    second = await Browser.launch('recovery-shares-2');
    const other = second.page;
    await other.goto(`${server.url}/login`);
    await logIn(second, 'admin', adminPassword);
    expect(pathOf(other)).toBe('/setup-wizard/auto_restore_password/');
    expect(await text(other, '#shares-collected')).toBe('1 of 3 shares are in (share 1).');

    // Meanwhile a third holder at the first browser: two shares are not enough.
    expect(await enterShare(page, shares[3]!.toLowerCase().replace(/-/g, ' '))).toBe(200);
    expect(await text(page, '#shares-collected')).toBe('2 of 3 shares are in (share 1, 4).');
    expect((await lifecycleOf(new WebClient(server.url))).state).toBe('autoRestore.password.waiting');

    // This holder checks what they typed before sending it.
    await other.check('#show-share');
    await other.fill('#share', shares[2]!);
    expect(await other.getAttribute('#share', 'type')).toBe('text');
    await shots(second, 'auto-restore-shares-second-browser');
    await submit(other, '#submit-share');
    expect((await lifecycleOf(new WebClient(server.url))).state).toBe('operational');
    // The recovery ends on its summary, as the password's does: every stored value checked.
    expect(pathOf(other)).toBe('/summary');
    expect((await text(other, '#values-checked')).replace(/\s+/g, ' ')).toMatch(/^\d+ secret values checked, all readable\.$/);
    expect(await text(other, '#summary-fingerprint')).toBe(fingerprint);
    expect(servedFingerprint(server.port)).toBe(fingerprint);

    // Every secret byte-equal; the backup password was never typed in.
    await other.goto(`${server.url}/devices`);
    await submit(other, 'tr[data-device="shares-device"] button[data-reveal=estPassword]');
    expect(await text(other, '#revealed-secret')).toBe(estPassword);
    await submit(other, 'tr[data-device="shares-device"] button[data-reveal=cmpSharedSecret]');
    expect(await text(other, '#revealed-secret')).toBe(cmpSecret);

    expect(overflows).toEqual([]);
  });
});
