import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RouteEntry } from '../../server/web/route-list';
import { newSecret } from '../support/secrets';
import { logIn, unlock, walkWizard } from './support/http-wizard';
import { KeywardServer } from './support/keyward-server';
import { concrete, inspectApplication } from './support/route-table';
import { CSRF_COOKIE } from '../../server/web/csrf';
import { csrfToken, lifecycleOf, WebClient, type WebResponse } from './support/web-client';

jest.setTimeout(120_000);

const TRUSTPOINT_PATHS = [
  '/setup-wizard/crypto-storage-setup/',
  '/setup-wizard/hsm-setup/:hsmType/',
  '/setup-wizard/setup_mode/',
  '/setup-wizard/restore/',
  '/setup-wizard/select_tls_server_credential/',
  '/setup-wizard/generate-tls-server-credential/',
  '/setup-wizard/import-tls-server-credential/',
  '/setup-wizard/tls-server-credential-apply/',
  '/setup-wizard/tls-server-credential-apply-cancel/',
  '/setup-wizard/backup-password/',
  '/setup-wizard/demo-data/',
  '/setup-wizard/create-super-user',
  '/setup-wizard/auto-restore-hsm-setup/:hsmType/',
  '/setup-wizard/auto_restore_password/',
];

/** Fields that would be accepted if the request were genuine, so a 403 can only be the CSRF check. */
const PLAUSIBLE: Record<string, string> = { storageType: 'software', mode: 'fresh', choice: 'skip', subjectAltNames: 'localhost', name: 'csrf-device', which: 'estPassword', username: 'admin' };

/**
 * What surrounds the wizard: the set-up code, CSRF on every form, the wizard closed after completion,
 * the login in front of every operations page, probes and metrics. Routes come from the
 * application's own router, so a route added later is covered without editing this file. Each
 * describe has a server of its own, set up in its beforeAll, so that any one test runs alone.
 */
function serverFor(name: string) {
  const server = new KeywardServer(name);
  const anonymous = () => new WebClient(server.url);
  const under = {
    server,
    anonymous,
    revision: async () => (await lifecycleOf(anonymous())).revision,
    routes: [] as RouteEntry[],
    posts: [] as RouteEntry[],
    readyz: { before: 0, after: 0 },
    async start() {
      await server.start();
      const application = await inspectApplication(server.home);
      under.routes = application.routes;
      under.readyz = { before: application.readyzBeforeBoot, after: application.readyzAfterBoot };
      under.posts = under.routes.filter((route) => !['GET', 'HEAD', 'OPTIONS'].includes(route.method));
    },
  };
  afterAll(async () => {
    await server.stop();
  });
  return under;
}

describe('web: security around the pages, during the wizard', () => {
  const under = serverFor('security-wizard');
  const { server, anonymous, revision } = under;

  beforeAll(async () => {
    await under.start();
  });

  it('serves every Trustpoint wizard path, and /readyz is 503 until BOOT has settled', async () => {
    const { routes, posts, readyz } = under;
    const paths = new Set(routes.map((route) => route.path));
    for (const path of TRUSTPOINT_PATHS) expect(paths).toContain(path);
    expect(posts.length).toBeGreaterThanOrEqual(15);
    expect(readyz).toEqual({ before: 503, after: 200 });
    expect((await anonymous().get('/readyz')).status).toBe(200);
    expect((await anonymous().get('/livez')).status).toBe(200);
  });

  it('keeps the wizard locked without the set-up code, and changes nothing', async () => {
    const { routes, posts } = under;
    const client = anonymous();
    const start = await revision();
    for (const route of routes.filter((r) => r.method === 'GET' && r.path.startsWith('/setup-wizard/') && r.path !== '/setup-wizard/unlock/')) {
      const response = await client.get(concrete(route.path));
      expect([route.path, response.status, response.location && new URL(response.location).pathname]).toEqual([route.path, 302, '/setup-wizard/unlock/']);
    }
    const token = csrfToken((await client.get('/setup-wizard/unlock/')).body)!;
    for (const route of posts.filter((r) => r.path.startsWith('/setup-wizard/') && r.path !== '/setup-wizard/unlock/')) {
      const response = await client.post(concrete(route.path), { _csrf: token, ...PLAUSIBLE });
      expect([route.path, response.status]).toEqual([route.path, 403]);
    }
    expect(await revision()).toBe(start);
  });

  it('answers 403 to every POST without a valid CSRF token during the wizard, and changes nothing', async () => {
    const { posts } = under;
    const wizard = anonymous();
    expect(await unlock(wizard, await server.setupCode())).toBe('/setup-wizard/crypto-storage-setup/');
    // The code works once: a second browser cannot use it.
    await expect(unlock(anonymous(), await server.setupCode())).rejects.toThrow(/HTTP 403/);
    const other = anonymous();
    const otherToken = csrfToken((await other.get('/setup-wizard/unlock/')).body)!;
    const start = await revision();
    for (const route of posts) {
      const path = concrete(route.path);
      const none = await wizard.post(path, PLAUSIBLE);
      const forged = await wizard.post(path, { _csrf: `${'ab'.repeat(32)}.${'cd'.repeat(32)}`, ...PLAUSIBLE });
      const foreign = await wizard.post(path, { _csrf: otherToken, ...PLAUSIBLE });
      expect([route.path, none.status, forged.status, foreign.status]).toEqual([route.path, 403, 403, 403]);
    }
    expect(await revision()).toBe(start);
    // The same session with its own token gets through to the form: the 403s above were the CSRF check.
    expect((await wizard.postForm('/setup-wizard/crypto-storage-setup/', '/setup-wizard/crypto-storage-setup/', { storageType: 'bogus' })).status).toBe(400);
    expect(await revision()).toBe(start);
  });

  it("sends the CSRF cookie once: a page opened again carries the token the browser holds; another session's token is replaced", async () => {
    const csrfCookies = (response: WebResponse) => [response.headers['set-cookie'] ?? []].flat().filter((cookie) => cookie.startsWith(`${CSRF_COOKIE}=`));
    const browser = anonymous();
    expect(csrfCookies(await browser.get('/setup-wizard/unlock/'))).toHaveLength(1);
    const held = browser.cookies.get(CSRF_COOKIE)!;
    const again = await browser.get('/setup-wizard/unlock/');
    expect({ cookies: csrfCookies(again), token: csrfToken(again.body) }).toEqual({ cookies: [], token: held });
    // A token bound to another browser's session is no token of this one: a new one comes in a new cookie.
    const other = anonymous();
    await other.get('/setup-wizard/unlock/');
    const foreign = other.cookies.get(CSRF_COOKIE)!;
    browser.cookies.set(CSRF_COOKIE, foreign);
    const replaced = await browser.get('/setup-wizard/unlock/');
    expect(csrfCookies(replaced)).toHaveLength(1);
    expect(browser.cookies.get(CSRF_COOKIE)).not.toBe(foreign);
    expect(csrfToken(replaced.body)).toBe(browser.cookies.get(CSRF_COOKIE));
  });

  it('prints the set-up code once, on the console only', async () => {
    const code = await server.setupCode();
    expect(server.output.split(code)).toHaveLength(2);
    for (const file of readdirSync(server.home).filter((name) => name.startsWith('keyward.sqlite'))) {
      expect(readFileSync(join(server.home, file)).includes(Buffer.from(code))).toBe(false);
    }
  });
});

/** A server whose wizard is walked (software storage) by a set-up session, before any test. */
function completedServer(name: string) {
  const under = serverFor(name);
  const adminPassword = `Ad-${newSecret('admin')}`;
  /** The session that presented the set-up code and walked the wizard. */
  const wizard = () => session;
  let session: WebClient;
  beforeAll(async () => {
    await under.start();
    session = under.anonymous();
    await unlock(session, await under.server.setupCode());
    await walkWizard(session, 'software', { pin: '', soPin: '', backupPassword: '', adminPassword });
  });
  return { under, server: under.server, anonymous: under.anonymous, revision: under.revision, adminPassword, wizard };
}

describe('web: security around the pages, after the wizard', () => {
  const { under, anonymous, revision, adminPassword, wizard: setupSession } = completedServer('security-completed');

  it('closes every wizard URL after completion, keeps CSRF on every POST, and sends visitors without a login to it', async () => {
    const { routes, posts } = under;
    const wizard = setupSession();
    expect((await lifecycleOf(anonymous())).state).toBe('operational');
    // The set-up session ended with the wizard.
    expect((await wizard.get('/inspect')).location).toMatch(/\/login\?next=/);

    const admin = anonymous();
    await logIn(admin, 'admin', adminPassword);
    const adminToken = csrfToken((await admin.get('/devices')).body)!;
    const start = await revision();
    const devices = (await admin.get('/devices')).body.match(/data-device=/g)?.length ?? 0;

    for (const route of routes.filter((r) => r.path.startsWith('/setup-wizard/'))) {
      const path = concrete(route.path);
      if (route.method === 'GET') {
        for (const client of [admin, anonymous()]) {
          const response = await client.get(path);
          expect([route.path, response.status === 404 || (response.status === 302 && !new URL(response.location!).pathname.startsWith('/setup-wizard/'))]).toEqual([route.path, true]);
        }
      } else {
        const response = await admin.post(path, { _csrf: adminToken, ...PLAUSIBLE });
        expect([route.path, response.status]).toEqual([route.path, 404]);
      }
    }

    for (const route of posts) {
      const response = await admin.post(concrete(route.path), PLAUSIBLE);
      expect([route.path, response.status]).toEqual([route.path, 403]);
    }

    const visitor = anonymous();
    const visitorToken = csrfToken((await visitor.get('/login')).body)!;
    const open = new Set(['/livez', '/readyz', '/metrics', '/status.json', '/login', '/logout']);
    for (const route of routes.filter((r) => !r.path.startsWith('/setup-wizard/') && !open.has(r.path))) {
      const path = concrete(route.path);
      const response = route.method === 'GET' ? await visitor.get(path) : await visitor.post(path, { _csrf: visitorToken, ...PLAUSIBLE });
      const where = response.location ? new URL(response.location).pathname : null;
      // What pages' scripts poll answers 401 (JSON), not a redirect to the login page.
      if (route.path.startsWith('/inspect/') || route.path === '/keys/progress.json') expect([route.path, response.status]).toEqual([route.path, 401]);
      else expect([route.path, where]).toEqual([route.path, '/login']);
    }
    expect(await revision()).toBe(start);
    expect((await admin.get('/devices')).body.match(/data-device=/g)?.length ?? 0).toBe(devices);
    expect((await admin.get('/status')).status).toBe(200);
  });

  it('exposes the lifecycle metrics and readiness', async () => {
    const metrics = (await anonymous().get('/metrics')).body;
    for (const name of [
      'keyward_lifecycle_state',
      'keyward_lifecycle_transitions_total',
      'keyward_backup_password_attempts_total',
      'keyward_effect_duration_seconds',
      'keyward_ready',
      'keyward_http_requests_total',
    ]) {
      expect(metrics).toContain(`# TYPE ${name} `);
    }
    expect(metrics).toMatch(/keyward_lifecycle_state\{state="operational",wizard_state="WIZARD_COMPLETED"\} 1/);
    expect(metrics).toMatch(/keyward_lifecycle_transitions_total\{event="CREATE_ADMIN",source="web"\} 1/);
    expect(metrics).toMatch(/keyward_effect_duration_seconds_count\{effect="generateTlsCredential",result="done"\} 1/);
    expect((await anonymous().get('/readyz')).status).toBe(200);
  });
});

describe('web: shutdown and login limits', () => {
  const { server, anonymous, adminPassword } = completedServer('security-shutdown');

  it('shuts down gracefully: a request in flight is answered, then the process exits 0', async () => {
    // A login spends ~100 ms in Argon2 on the thread pool: it is in flight when SIGTERM arrives.
    const client = anonymous();
    const token = csrfToken((await client.get('/login')).body)!;
    const pending = client.post('/login', { _csrf: token, username: 'admin', password: adminPassword });
    await new Promise((resolve) => setTimeout(resolve, 30));
    const stopped = server.stop();
    expect((await pending).status).toBe(303);
    expect(await stopped).toBe(0);
    const output = server.output;
    const shutdown = output.indexOf('SIGTERM: shutting down');
    expect(shutdown).toBeGreaterThan(0);
    expect(output.indexOf('"route":"/login"', shutdown)).toBeGreaterThan(shutdown);
    expect(output).toMatch(/keyward: stopped\s*$/);
    await server.start();
  });

  it('rate-limits failed logins', async () => {
    // A process of its own: its limiter has counted nothing yet.
    await server.restart();
    const client = anonymous();
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await client.postForm('/login', '/login', { username: 'admin', password: `wrong-${i}` })).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses[10]).toBe(429);
    // The limit is the web's; the lifecycle is untouched by it.
    expect((await lifecycleOf(client)).state).toBe('operational');
  });
});
