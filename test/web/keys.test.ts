import { newSecret } from '../support/secrets';
import { Browser, pathOf } from './support/browser';
import { logIn as logInHttp, walkWizard, unlock as unlockHttp } from './support/http-wizard';
import { KeywardServer } from './support/keyward-server';
import { fieldError, logIn, submit, text } from './support/pages';
import { lifecycleOf, WebClient } from './support/web-client';

jest.setTimeout(420_000);

const DEVICES = 12;

/** A metric's value from the Prometheus text, or null when the series is absent. */
function metric(body: string, series: string): number | null {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : null;
}

/** The secret keys pkcs11-tool (an independent client) sees on the token, by CKA_ID. */
const kekIdsOnToken = (server: KeywardServer, pin: string): string[] => server.kekIdsOnToken(pin);

async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

interface Progress {
  state: string;
  rotation: { kind: string; step: string; newKeyId: string | null } | null;
  running: { kind: string; source: string } | null;
  reencryption: { valuesDone: number; valuesTotal: number; valuesLeft: number; finishedAt: string | null } | null;
  fraction: number;
  finished: boolean;
  failed: boolean;
}

/**
 * The Keys page in Chromium on a SoftHSM install with devices: the keyset, a KEK rotation (the CKA_ID
 * changes, pkcs11-tool sees one KEK), a DEK rotation that returns at once and is followed by the
 * progress bar — paused mid-job, killed, resumed by the next start in the background — the backup
 * password and the token PIN changed through the page, and the key gauges on /metrics.
 */
describe('web: the Keys page', () => {
  const server = new KeywardServer('keys');
  const secrets = { pin: newSecret('pin'), soPin: newSecret('sopin'), backupPassword: `Bk-${newSecret('backup')}`, adminPassword: `Ad-${newSecret('admin')}` };
  const estPasswords = Array.from({ length: DEVICES }, (_, i) => newSecret(`est${i}`));
  let browser: Browser;
  let client: WebClient;

  beforeAll(async () => {
    await server.start();
    const installer = new WebClient(server.url);
    await unlockHttp(installer, await server.setupCode());
    await walkWizard(installer, 'softhsm', secrets);
    client = new WebClient(server.url);
    await logInHttp(client, 'admin', secrets.adminPassword);
    for (const [i, estPassword] of estPasswords.entries()) {
      const response = await client.postForm('/devices', '/devices', { name: `device-${i}`, estPassword, cmpSharedSecret: '' });
      expect(response.status).toBe(303);
    }
    browser = await Browser.launch('keys');
  });

  afterAll(async () => {
    await browser?.close();
    await server.stop();
    if (browser) process.stdout.write(`web: ${browser.screenshots} screenshots of the Keys page in ${browser.shots}\n`);
  });

  const progress = async (): Promise<Progress> => {
    const response = await client.get('/keys/progress.json', { accept: 'application/json' });
    expect(response.status).toBe(200);
    return JSON.parse(response.body) as Progress;
  };
  const liveRows = async () =>
    browser.page.$$eval('#keyset tbody tr[data-key-id]', (rows: Array<{ getAttribute(name: string): string | null }>) =>
      rows.map((row) => ({ id: row.getAttribute('data-key-id')!, state: row.getAttribute('data-state')! })),
    );
  const retiredIds = async () =>
    browser.page.$$eval('#retired tbody tr[data-key-id]', (rows: Array<{ getAttribute(name: string): string | null }>) => rows.map((row) => row.getAttribute('data-key-id')!));

  it('shows the keyset, the KEK and the backup key, at desktop and phone widths', async () => {
    const page = browser.page;
    await page.goto(`${server.url}/keys`);
    expect(pathOf(page)).toBe('/login');
    await logIn(browser, 'admin', secrets.adminPassword);
    expect(pathOf(page)).toBe('/keys');
    const rows = await liveRows();
    expect(rows).toEqual([{ id: expect.stringMatching(/^[0-9a-f]{16}$/), state: 'primary' }]);
    expect(await text(page, `#keyset tr[data-key-id="${rows[0]!.id}"] .encryptions`)).toMatch(/^[1-9][0-9]*$/);
    expect(await page.$('#retired')).toBeNull();
    expect(await text(page, '#kek-label')).toBe('trustpoint-kek');
    expect(await text(page, '#kek-id')).toMatch(/^[0-9a-f]+$/);
    expect(await text(page, '#kek-age')).toMatch(/^\d+ (second|minute)s?/);
    expect(await text(page, '#backup-key')).toMatch(/^present/);
    expect(await page.$('#rotation')).toBeNull();
    expect(await page.$$('.rotation-due')).toHaveLength(0);
    for (const id of ['rotate-kek', 'rotate-dek', 'change-backup-password', 'change-token-pin']) expect(await page.isEnabled(`#${id}`)).toBe(true);
    expect(await page.getAttribute('header nav a[href="/keys"]', 'aria-current')).toBe('page');
    // At 1280 px and at 390 px: no text outside its box, nothing wider than the phone's screen.
    expect(await browser.shot('keys')).toEqual([]);
  });

  it('rotates the KEK from the page: the CKA_ID changes and the token holds only the new KEK', async () => {
    const page = browser.page;
    await page.goto(`${server.url}/keys`);
    const before = await text(page, '#kek-id');
    expect(kekIdsOnToken(server, secrets.pin)).toEqual([before]);
    await submit(page, '#rotate-kek');
    // Quick: done already, or the page follows it until it is.
    await page.waitForSelector('#rotation', { state: 'detached', timeout: 30_000 });
    await page.waitForSelector('#done');
    await browser.shot('keys-kek-rotated');
    const after = await text(page, '#kek-id');
    expect(after).toMatch(/^[0-9a-f]+$/);
    expect(after).not.toBe(before);
    expect(kekIdsOnToken(server, secrets.pin)).toEqual([after]);
    expect(await page.$('#last-error')).toBeNull();
    const { history } = JSON.parse((await client.get('/inspect/state.json', { accept: 'application/json' })).body) as { history: Array<{ eventType: string; source: string }> };
    expect(history.filter((row) => row.eventType === 'ROTATE_KEK').map((row) => row.source)).toEqual(['web:admin']);
  });

  it('rotates the DEK without holding the request; a crash mid-job is finished by the next start in the background', async () => {
    const page = browser.page;
    // This run pauses the re-encryption job after its first batch, for as long as the process lives.
    await server.restart({ KEYWARD_CRASH_AT: 'reencryptValues:batch-committed' });
    client.baseUrl = server.url;
    await page.goto(`${server.url}/keys`);
    const [old] = await liveRows();
    const oldId = old!.id;

    // The confirmation is required.
    expect(await submit(page, '#rotate-dek')).toBe(400);
    expect(await fieldError(page, 'confirm')).toMatch(/confirm the DEK rotation/);

    await page.check('#confirm');
    const started = Date.now();
    expect(await submit(page, '#rotate-dek')).toBe(200);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(pathOf(page)).toBe('/keys');
    expect(await page.$('#rotation')).not.toBeNull();
    await server.waitFor(/paused at checkpoint reencryptValues:batch-committed/);

    const paused = await until('the job to report its first batch', async () => {
      const p = await progress();
      return p.rotation?.step === 'reencrypting' && p.reencryption && p.reencryption.valuesDone > 0 ? p : null;
    });
    expect(paused).toMatchObject({ state: 'rotatingDek.reencrypting', running: { kind: 'dek', source: 'web:admin' }, finished: false, failed: false });
    expect(paused.rotation!.newKeyId).toMatch(/^[0-9a-f]{16}$/);
    expect(paused.rotation!.newKeyId).not.toBe(oldId);
    expect(paused.reencryption!.valuesTotal).toBeGreaterThanOrEqual(DEVICES * 2);
    expect(paused.fraction).toBeGreaterThan(0.5);
    expect(paused.fraction).toBeLessThan(1);
    const newId = paused.rotation!.newKeyId!;

    // The page follows it: the script moves the bar, the server keeps serving meanwhile.
    await until('the bar to move', async () => Number(await page.getAttribute('#rotation-progress', 'value')) > 500, 15_000);
    // Written by the page's script only (/static/js/keys.js), after a poll of /keys/progress.json.
    await until('the script to follow', async () => /^Following the rotation · checked/.test(await text(page, '#rotation-live')), 15_000);
    expect(await text(page, '#rotation-step')).toBe('reencrypting');
    expect(await text(page, '#rotation-new-key-id')).toBe(newId);
    expect(await text(page, '#rotation-summary')).toMatch(/^Step 3 of 4: re-encrypting the stored values under the new DEK — \d+ of \d+ values/);
    expect(await page.isDisabled('#rotate-kek')).toBe(true);
    await browser.shot('keys-dek-rotation-progress');
    expect((await client.get('/status')).status).toBe(200);
    expect((await client.get('/devices')).status).toBe(200);
    const again = await client.postForm('/keys', '/keys/rotate-dek', { confirm: 'yes' });
    expect(again.status).toBe(409);
    expect(again.body).toMatch(/A DEK rotation is running/);
    const during = (await client.get('/metrics')).body;
    expect(metric(during, 'keyward_dek_reencryption_values_done')).toBe(paused.reencryption!.valuesDone);
    expect(metric(during, 'keyward_dek_reencryption_values_left')).toBe(paused.reencryption!.valuesLeft);
    expect(metric(during, `keyward_dek_encryptions{key_id="${oldId}"}`)).toBeGreaterThan(0);
    expect(metric(during, `keyward_dek_encryptions{key_id="${newId}"}`)).toBeGreaterThan(0);

    // A crash in the middle of the job; the next start finishes it in the background and serves meanwhile.
    await server.kill();
    await server.start();
    client.baseUrl = server.url;
    await server.waitFor(/resuming the DEK rotation that was interrupted/);
    await page.goto(`${server.url}/keys`);
    const finished = await until('the rotation to finish', async () => {
      const p = await progress();
      return p.finished ? p : null;
    });
    expect(finished).toMatchObject({ state: 'operational', rotation: null, running: null, fraction: 1 });
    // The page's script saw the end and reloaded it (unless the rotation ended before the page was read).
    await page.waitForSelector('#rotation', { state: 'detached', timeout: 15_000 });
    await page.waitForLoadState();
    expect(await liveRows()).toEqual([{ id: newId, state: 'primary' }]);
    expect(await retiredIds()).toEqual([oldId]);
    await browser.shot('keys-dek-rotated');

    const metrics = (await client.get('/metrics')).body;
    expect(metric(metrics, 'keyward_dek_reencryption_values_left')).toBe(0);
    expect(metric(metrics, 'keyward_dek_reencryption_values_done')).toBeGreaterThanOrEqual(DEVICES * 2);
    expect(metric(metrics, `keyward_dek_encryptions{key_id="${oldId}"}`)).toBeNull();

    // Every device's EST password reads back unchanged, now under the new DEK.
    await page.goto(`${server.url}/devices`);
    for (const i of [0, DEVICES - 1]) {
      await submit(page, `tr[data-device="device-${i}"] button[data-reveal=estPassword]`);
      expect(await text(page, '#revealed-secret')).toBe(estPasswords[i]);
    }
    const log = JSON.parse((await client.get('/inspect/state.json', { accept: 'application/json' })).body) as { history: Array<{ eventType: string; source: string }> };
    expect(log.history.filter((row) => row.eventType === 'ROTATE_DEK').map((row) => row.source)).toEqual(expect.arrayContaining(['web:admin', 'boot']));
  });

  it('changes the backup password: a mismatch or a wrong current password changes nothing, and the old one stops working', async () => {
    const page = browser.page;
    await page.goto(`${server.url}/keys`);
    const next = `Nb-${newSecret('backup2')}`;
    const fill = async (current: string, password: string, confirm: string) => {
      await page.check('#authorize-backup-password');
      await page.fill('#currentPassword', current);
      await page.fill('#password', password);
      await page.fill('#passwordConfirm', confirm);
      return submit(page, '#change-backup-password');
    };

    const revision = (await lifecycleOf(client)).revision;
    expect(await fill(secrets.backupPassword, next, `${next}x`)).toBe(400);
    expect(await fieldError(page, 'passwordConfirm')).toBe('The two new backup passwords differ: type the same one twice.');
    expect((await lifecycleOf(client)).revision).toBe(revision);
    await browser.shot('keys-password-mismatch');

    expect(await fill(`Wr-${newSecret('wrong')}`, next, next)).toBe(400);
    expect(await fieldError(page, 'currentPassword')).toMatch(/^The current backup password is wrong: nothing was changed \(1 wrong password in a row/);
    expect(await text(page, '#password-failures')).toBe('1 wrong backup password in a row.');
    const counted = (await client.get('/metrics')).body;
    expect(metric(counted, 'keyward_backup_password_failures')).toBe(1);
    expect(metric(counted, 'keyward_backup_password_attempts_total{result="wrong"}')).toBe(1);

    expect(await fill(secrets.backupPassword, next, next)).toBe(200);
    expect(await text(page, '#done')).toMatch(/^The backup password was changed/);
    expect(await page.$('#password-failures')).toBeNull();

    // The old password opens nothing any more; the new one, or the administrator's password, authorizes.
    expect(await fill(secrets.backupPassword, `Nc-${newSecret('backup3')}`, `Nc-${newSecret('backup3b')}`)).toBe(400);
    const third = `Nd-${newSecret('backup4')}`;
    expect(await fill(secrets.backupPassword, third, third)).toBe(400);
    expect(await fieldError(page, 'currentPassword')).toMatch(/^The current backup password is wrong/);
    await page.check('#authorize-admin');
    await page.fill('#adminPassword', secrets.adminPassword);
    await page.fill('#password', third);
    await page.fill('#passwordConfirm', third);
    expect(await submit(page, '#change-backup-password')).toBe(200);
    expect(await text(page, '#done')).toMatch(/^The backup password was changed/);
    expect(await fill(next, third, third)).toBe(400);
    expect(await fieldError(page, 'currentPassword')).toMatch(/wrong/);
    secrets.backupPassword = third;
  });

  it('changes the token PIN: the next start logs in with the new one', async () => {
    const page = browser.page;
    await page.goto(`${server.url}/keys`);
    const pin = newSecret('pin2');
    await page.fill('#pin', pin);
    await page.fill('#pinConfirm', `${pin}x`);
    expect(await submit(page, '#change-token-pin')).toBe(400);
    expect(await fieldError(page, 'pinConfirm')).toBe('The two new user PINs differ: type the same one twice.');
    expect(kekIdsOnToken(server, secrets.pin)).toHaveLength(1);

    await page.fill('#pin', pin);
    await page.fill('#pinConfirm', pin);
    expect(await submit(page, '#change-token-pin')).toBe(200);
    expect(await text(page, '#done')).toMatch(/^The token’s user PIN was changed/);
    expect(() => kekIdsOnToken(server, secrets.pin)).toThrow();
    const kekId = await text(page, '#kek-id');
    expect(kekIdsOnToken(server, pin)).toEqual([kekId]);

    await server.restart();
    client.baseUrl = server.url;
    expect((await lifecycleOf(client)).state).toBe('operational');
    await page.goto(`${server.url}/devices`);
    await submit(page, 'tr[data-device="device-1"] button[data-reveal=estPassword]');
    expect(await text(page, '#revealed-secret')).toBe(estPasswords[1]);
    secrets.pin = pin;
  });

  it('puts the key gauges on /metrics', async () => {
    await browser.page.goto(`${server.url}/keys`);
    const [primary] = await liveRows();
    const body = (await client.get('/metrics')).body;
    expect(metric(body, 'keyward_rotation_due{key="dek",reason="encryptions"}')).toBe(0);
    expect(metric(body, 'keyward_rotation_due{key="dek",reason="age"}')).toBe(0);
    expect(metric(body, 'keyward_rotation_due{key="kek",reason="age"}')).toBe(0);
    expect(metric(body, `keyward_dek_encryptions{key_id="${primary!.id}"}`)).toBeGreaterThanOrEqual(DEVICES * 2);
    expect(metric(body, `keyward_dek_age_seconds{key_id="${primary!.id}"}`)).toBeGreaterThan(0);
    expect(metric(body, 'keyward_kek_age_seconds')).toBeGreaterThan(0);
    expect(metric(body, 'keyward_dek_reencryption_values_per_second')).toBeGreaterThanOrEqual(0);
  });

  it('shows a failed rotation’s error as a sentence, and a KEK rotation makes a KEK again', async () => {
    const page = browser.page;
    // An operator (or a faulty HSM) destroys the KEK behind keyward's back; the DEKs stay in this process's memory.
    server.pkcs11Tool(['--token-label', 'Trustpoint-SoftHSM', '--login', '--pin', 'env:KW_TEST_PIN', '--delete-object', '--type', 'secrkey', '--label', 'trustpoint-kek'], secrets.pin);
    expect(kekIdsOnToken(server, secrets.pin)).toEqual([]);
    await page.goto(`${server.url}/keys`);
    const [primary] = await liveRows();
    await page.check('#confirm');
    await submit(page, '#rotate-dek');
    const error = await until('the error', async () => {
      if (pathOf(page) !== '/keys' || (await page.$('#rotation'))) await page.goto(`${server.url}/keys`);
      const shown = (await page.$('#form-rotate-dek .form-error')) ?? (await page.$('#last-error'));
      return shown ? ((await shown.textContent()) ?? '').trim() : null;
    });
    expect(error).toMatch(/^[A-Z].*no key labelled "trustpoint-kek".*\.$/s);
    await browser.shot('keys-rotation-failed');
    // Nothing changed: the same primary DEK, no rotation left recorded.
    expect(await liveRows()).toEqual([primary]);
    expect((await progress()).rotation).toBeNull();

    await submit(page, '#rotate-kek');
    await page.waitForSelector('#rotation', { state: 'detached', timeout: 30_000 });
    const kekId = await text(page, '#kek-id');
    expect(kekIdsOnToken(server, secrets.pin)).toEqual([kekId]);
    await server.restart();
    client.baseUrl = server.url;
    expect((await lifecycleOf(client)).state).toBe('operational');
  });

  it('has no text outside its box on any page shot above, at 1280 px or at 390 px', () => {
    expect(browser.screenshots).toBeGreaterThan(0);
    expect(browser.overflows).toEqual([]);
  });
});

/**
 * The rotation policy with tiny limits: the status page and /metrics say what is due and why; with
 * KEYWARD_AUTO_ROTATE=on the server rotates by itself (source `policy`), once per due key.
 */
describe('web: the rotation policy', () => {
  const server = new KeywardServer('keys-policy', { KEYWARD_DEK_MAX_ENCRYPTIONS: '5', KEYWARD_KEK_MAX_AGE_DAYS: '0.00005' });
  const secrets = { pin: newSecret('pin'), soPin: newSecret('sopin'), backupPassword: `Bk-${newSecret('backup')}`, adminPassword: `Ad-${newSecret('admin')}` };

  afterAll(async () => {
    await server.stop();
  });

  it('warns on the status page and in /metrics, and rotates by itself when auto-rotation is on', async () => {
    await server.start();
    const installer = new WebClient(server.url);
    await unlockHttp(installer, await server.setupCode());
    await walkWizard(installer, 'softhsm', secrets);
    const client = new WebClient(server.url);
    await logInHttp(client, 'admin', secrets.adminPassword);
    for (let i = 0; i < 3; i++) expect((await client.postForm('/devices', '/devices', { name: `device-${i}`, estPassword: '', cmpSharedSecret: '' })).status).toBe(303);

    // The KEK's limit is 4.32 seconds: both are due once it has passed.
    const status = await until('both warnings', async () => {
      const body = (await client.get('/status')).body;
      return /data-key="kek" data-reason="age"/.test(body) ? body : null;
    });
    expect(status).toMatch(/<strong>Rotation due:<\/strong> DEK [0-9a-f]{16} has encrypted \d+ values, at or over the limit of 5 \(the GCM budget is 4,294,967,296\): rotate the DEK\./);
    expect(status).toMatch(/<strong>Rotation due:<\/strong> the KEK \(CKA_ID [0-9a-f]+\) is \d+ seconds old, over the limit of 0.00005 days: rotate the KEK\./);
    const metrics = await until('the gauges', async () => {
      const body = (await client.get('/metrics')).body;
      return metric(body, 'keyward_rotation_due{key="kek",reason="age"}') === 1 ? body : null;
    });
    expect(metric(metrics, 'keyward_rotation_due{key="dek",reason="encryptions"}')).toBe(1);
    expect(metric(metrics, 'keyward_rotation_due{key="dek",reason="age"}')).toBe(0);
    const keys = (await client.get('/keys')).body;
    expect(keys).toMatch(/class="warning rotation-due" data-key="dek" data-reason="encryptions"/);
    const kekBefore = /id="kek-id">([0-9a-f]+)</.exec(keys)![1]!;
    const dekBefore = /data-key-id="([0-9a-f]{16})" data-state="primary"/.exec(keys)![1]!;

    // Auto-rotation on: the KEK first, then the DEK, each by itself, one at a time.
    await server.restart({ KEYWARD_AUTO_ROTATE: 'on', KEYWARD_ROTATION_CHECK_SECONDS: '1' });
    client.baseUrl = server.url;
    await server.waitFor(/rotation due: the KEK is rotated automatically/);
    await server.waitFor(/rotation due: the DEK is rotated automatically/, 60_000);
    // The new DEK holds every value now, so it is at the tiny limit too: rotating it again would never end.
    await server.waitFor(/KEYWARD_DEK_MAX_ENCRYPTIONS is below the number of stored secret values/, 30_000);
    const rotated = await until('both keys to be new', async () => {
      const body = (await client.get('/keys')).body;
      const kek = /id="kek-id">([0-9a-f]+)</.exec(body)?.[1];
      const dek = /data-key-id="([0-9a-f]{16})" data-state="primary"/.exec(body)?.[1];
      return kek && dek && kek !== kekBefore && dek !== dekBefore && !/id="rotation"/.test(body) ? body : null;
    });
    expect(rotated).toContain(`<tr data-key-id="${dekBefore}">`);
    const { history } = JSON.parse((await client.get('/inspect/state.json', { accept: 'application/json' })).body) as { history: Array<{ eventType: string; source: string }> };
    const byPolicy = history.filter((row) => row.source === 'policy').map((row) => row.eventType);
    expect(byPolicy).toEqual(expect.arrayContaining(['ROTATE_KEK', 'ROTATE_DEK']));
    expect(server.output.split('\n').filter((line) => /"source":"policy"/.test(line) && /DEK rotation started/.test(line))).toHaveLength(1);
    // Never two at once: each rotation started after the one before had ended.
    const lines = server.output.split('\n').filter((line) => /rotation (started|finished|did not finish)"/.test(line));
    let open = 0;
    for (const line of lines) {
      open += /started"/.test(line) ? 1 : -1;
      expect(open === 0 || open === 1).toBe(true);
    }
  });
});
