import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase } from '../../db/database';
import { newSecret } from '../support/secrets';
import { logIn, softHsmForm, step, unlock, walkWizard } from './support/http-wizard';
import { KeywardServer } from './support/keyward-server';
import { csrfToken, lifecycleOf, WebClient } from './support/web-client';
import type { AdminUserRow } from '../../db/rows';

jest.setTimeout(180_000);

/** Reads the server's SQLite database beside it (WAL: a reader does not disturb the server). */
async function query<T>(server: KeywardServer, fn: (db: ReturnType<typeof openDatabase>) => Promise<T>): Promise<T> {
  const db = openDatabase({ client: 'sqlite', filename: join(server.home, 'keyward.sqlite') });
  try {
    return await fn(db);
  } finally {
    await db.destroy();
  }
}

/** A form as a browser tab holds it: the fields it was rendered with, posted later. */
async function openForm(client: WebClient, page: string): Promise<Record<string, string>> {
  const body = (await client.get(page)).body;
  const hidden = Object.fromEntries([...body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  expect(hidden._csrf).toBe(csrfToken(body));
  return hidden;
}

/** The first outside review's findings about sessions, stale forms, public pages and the login limit. */
describe('web: hardening after the first outside review', () => {
  describe('a software install', () => {
    const server = new KeywardServer('hardening-software');

    afterAll(async () => {
      await server.stop();
    });

    it('ends the set-up sessions of an earlier start: after a restart only the new code unlocks', async () => {
      await server.start();
      const earlier = new WebClient(server.url);
      expect(await unlock(earlier, await server.setupCode())).toBe('/setup-wizard/crypto-storage-setup/');
      expect((await earlier.get('/setup-wizard/crypto-storage-setup/')).status).toBe(200);

      await server.restart();
      earlier.baseUrl = server.url;
      const page = await earlier.get('/setup-wizard/crypto-storage-setup/');
      expect([page.status, page.location && new URL(page.location).pathname]).toEqual([302, '/setup-wizard/unlock/']);
      const token = csrfToken((await earlier.get('/setup-wizard/unlock/')).body)!;
      expect((await earlier.post('/setup-wizard/crypto-storage-setup/', { _csrf: token, storageType: 'software' })).status).toBe(403);
      expect((await lifecycleOf(earlier)).wizardState).toBe('WIZARD_SETUP_CRYPTO_STORAGE');

      const current = new WebClient(server.url);
      expect(await unlock(current, await server.setupCode())).toBe('/setup-wizard/crypto-storage-setup/');
    });

    it('refuses a form for a step that is over, with a message, and changes nothing', async () => {
      // One browser, two tabs: both share its session.
      await server.restart();
      const browser = new WebClient(server.url);
      expect(await unlock(browser, await server.setupCode())).toBe('/setup-wizard/crypto-storage-setup/');

      const tabB = await openForm(browser, '/setup-wizard/crypto-storage-setup/');
      expect(await step(browser, '/setup-wizard/crypto-storage-setup/', { storageType: 'software' })).toBe('/setup-wizard/setup_mode/');
      const before = await lifecycleOf(browser);

      const stale = await browser.post('/setup-wizard/crypto-storage-setup/', { ...tabB, storageType: 'softhsm' });
      expect(stale.status).toBe(409);
      expect(/id="error-message">([^<]*)</.exec(stale.body)?.[1]).toMatch(/This form was for “Crypto storage”, but the set-up has moved on to “Set-up mode” .*Nothing was changed/);
      expect(await lifecycleOf(browser)).toEqual(before);
      expect(await query(server, (db) => db('key_storage_config').first('storage_type'))).toEqual({ storage_type: 'software' });

      // Back at the same step by another way: the apply form of a credential this tab never saw.
      expect(await step(browser, '/setup-wizard/setup_mode/', { mode: 'fresh' })).toBe('/setup-wizard/select_tls_server_credential/');
      expect(await step(browser, '/setup-wizard/generate-tls-server-credential/', { subjectAltNames: 'localhost\n127.0.0.1' })).toBe('/setup-wizard/tls-server-credential-apply/');
      const tabA = await openForm(browser, '/setup-wizard/tls-server-credential-apply/');
      expect(tabA.formStep).toMatch(/^WIZARD_TLS_SERVER_CREDENTIAL_APPLY@\d+$/);
      expect(await step(browser, '/setup-wizard/tls-server-credential-apply/', {}, '/setup-wizard/tls-server-credential-apply-cancel/')).toBe('/setup-wizard/select_tls_server_credential/');
      expect(await step(browser, '/setup-wizard/generate-tls-server-credential/', { subjectAltNames: 'localhost' })).toBe('/setup-wizard/tls-server-credential-apply/');
      const pending = await lifecycleOf(browser);
      const outdated = await browser.post('/setup-wizard/tls-server-credential-apply/', tabA);
      expect(outdated.status).toBe(409);
      expect(/id="error-message">([^<]*)</.exec(outdated.body)?.[1]).toMatch(/This “Apply TLS” form was shown before the set-up changed .*Nothing was changed: reload the page/);
      expect(await lifecycleOf(browser)).toEqual(pending);
      // The form of the current page goes through.
      expect(await step(browser, '/setup-wizard/tls-server-credential-apply/', {})).toBe('/setup-wizard/demo-data/');
    });
  });

  describe('a SoftHSM install run by "opsadmin"', () => {
    const server = new KeywardServer('hardening-softhsm');
    const secrets = { pin: newSecret('pin'), soPin: newSecret('sopin'), backupPassword: `Bk-${newSecret('backup')}`, adminPassword: `Ad-${newSecret('admin')}` };
    const anonymous = () => new WebClient(server.url);
    let admin: WebClient;

    afterAll(async () => {
      await server.stop();
    });

    it('names no administrator in the public metrics', async () => {
      await server.start();
      const installer = new WebClient(server.url);
      await unlock(installer, await server.setupCode());
      await walkWizard(installer, 'softhsm', secrets, 'opsadmin');
      admin = new WebClient(server.url);
      await logIn(admin, 'opsadmin', secrets.adminPassword);

      // The token is lost; the logged-in administrator runs the auto-restore (events from "web:opsadmin").
      await server.stop();
      server.deleteTokens();
      await server.start();
      admin.baseUrl = server.url;
      expect(await step(admin, '/setup-wizard/auto-restore-hsm-setup/softhsm/', softHsmForm(secrets.pin, secrets.soPin))).toBe('/setup-wizard/auto_restore_password/');
      await step(admin, '/setup-wizard/auto_restore_password/', { password: secrets.backupPassword });
      expect((await lifecycleOf(admin)).state).toBe('operational');
      const sources = await query(server, (db) => db('transition_log').distinct('source').pluck('source'));
      expect(sources).toContain('web:opsadmin');

      const metrics = (await anonymous().get('/metrics')).body;
      expect(metrics).toMatch(/keyward_lifecycle_transitions_total\{event="SETUP_HSM",source="web"\} 1/);
      expect(metrics).not.toContain('opsadmin');
    });

    it('locks the account after repeated failed logins, in the database: a restart does not lift it', async () => {
      const guesser = anonymous();
      const answers = [];
      for (let i = 0; i < 10; i++) answers.push(await guesser.postForm('/login', '/login', { username: 'opsadmin', password: `wrong-${i}` }));
      expect(answers.map((a) => a.status)).toEqual(Array(10).fill(401));
      expect(answers[8]!.body).not.toMatch(/locked/);
      expect(answers[9]!.body).toMatch(/The user name or the password is wrong\. Too many failed logins for this account: it is locked until \d\d:\d\d UTC/);
      const row = await query(server, (db) => db<AdminUserRow>('admin_users').where({ username: 'opsadmin' }).first('failed_logins', 'locked_until'));
      expect(row?.failed_logins).toBe(10);
      expect(Date.parse(row?.locked_until ?? '')).toBeGreaterThan(Date.now());

      // Neither limit is lifted by a restart: both are in the database (the per-address one since 013).
      await server.restart();
      const owner = new WebClient(server.url);
      const limited = await owner.postForm('/login', '/login', { username: 'opsadmin', password: secrets.adminPassword });
      expect([limited.status, /from this address/.test(limited.body)]).toEqual([429, true]);
      // Once the address's window has passed, the account's lock still holds.
      await query(server, (db) => db('web_rate_limits').update({ reset_at: Date.now() - 1 }));
      const refused = await owner.postForm('/login', '/login', { username: 'opsadmin', password: secrets.adminPassword });
      expect(refused.status).toBe(429);
      expect(refused.body).toMatch(/Too many failed logins for this account: it is locked until \d\d:\d\d UTC/);
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);

      // Once the lock has run out, the right password opens it and the count starts again.
      await query(server, (db) =>
        db('admin_users')
          .where({ username: 'opsadmin' })
          .update({ locked_until: new Date(Date.now() - 1000).toISOString() }),
      );
      await logIn(owner, 'opsadmin', secrets.adminPassword);
      expect(await query(server, (db) => db('admin_users').where({ username: 'opsadmin' }).first('failed_logins', 'locked_until'))).toEqual({ failed_logins: 0, locked_until: null });
    });

    it('keeps internal reasons off the public status: a token refusing its PIN is named to the administrator only', async () => {
      await server.stop();
      writeFileSync(join(server.home, 'secrets', 'hsm-user-pin'), `${newSecret('wrong-pin')}\n`, { mode: 0o600 });
      await server.start();
      admin.baseUrl = server.url;
      const visitor = anonymous();
      const status = await visitor.get('/status.json', { accept: 'application/json' });
      expect(status.status).toBe(200);
      expect((JSON.parse(status.body) as { state: string }).state).toBe('failed');
      expect(status.body).not.toMatch(/PIN|token|reason|scenario/i);
      const page = await visitor.get('/lifecycle');
      expect(page.status).toBe(200);
      expect(page.body).not.toMatch(/WRONG_PIN|PIN was rejected|Trustpoint-SoftHSM/);
      expect((await visitor.get('/readyz')).body).not.toMatch(/PIN/);
      expect((await visitor.get('/metrics')).body).not.toMatch(/WRONG_PIN|opsadmin/);
      // The administrator still sees why.
      expect((await admin.get('/lifecycle')).body).toMatch(/WRONG_PIN|PIN was rejected/);
    });
  });
});
