import { newSecret } from '../support/secrets';
import { logIn, softHsmForm, step, unlock, walkWizard } from './support/http-wizard';
import { KeywardServer } from './support/keyward-server';
import { csrfToken, fieldError, lifecycleOf, WebClient } from './support/web-client';

jest.setTimeout(120_000);

/**
 * Trustpoint allowed unlimited backup-password guesses; here the form of auto-restore locks out after repeated failures,
 * and the lock survives a restart (it is the machine's persisted counter, not the web process's).
 * Also: /readyz is 503 while a restore waits for its password; the set-up code form is rate-limited.
 */
describe('web: the auto-restore password lockout', () => {
  const server = new KeywardServer('lockout');
  const codeServer = new KeywardServer('lockout-code');
  const secrets = { pin: newSecret('pin'), soPin: newSecret('sopin'), backupPassword: `Bk-${newSecret('backup')}`, adminPassword: `Ad-${newSecret('admin')}` };
  const wrong = `Wr-${newSecret('wrong')}`;

  afterAll(async () => {
    await server.stop();
    await codeServer.stop();
  });

  const submit = (client: WebClient, password: string) => client.postForm('/setup-wizard/auto_restore_password/', '/setup-wizard/auto_restore_password/', { password });

  it('locks out after three wrong passwords and stays locked across a restart', async () => {
    await server.start();
    const installer = new WebClient(server.url);
    await unlock(installer, await server.setupCode());
    await walkWizard(installer, 'softhsm', secrets);
    await logIn(installer, 'admin', secrets.adminPassword);

    // The token is lost with the container.
    await server.stop();
    server.deleteTokens();
    await server.start();
    const client = new WebClient(server.url);
    expect((await client.get('/readyz')).status).toBe(503);
    expect(await unlock(client, await server.setupCode())).toBe('/setup-wizard/auto-restore-hsm-setup/softhsm/');
    expect(await step(client, '/setup-wizard/auto-restore-hsm-setup/softhsm/', softHsmForm(secrets.pin, secrets.soPin, { slot: null }))).toBe('/setup-wizard/auto_restore_password/');
    expect((await client.get('/readyz')).status).toBe(503);

    // Three wrong passwords: each shown beside the field; the third starts the lockout.
    for (let i = 0; i < 3; i++) {
      const response = await submit(client, wrong);
      expect(response.status).toBe(400);
      expect(fieldError(response.body, 'password')).toMatch(/wrong/);
    }
    const locked = await submit(client, wrong);
    expect(locked.status).toBe(429);
    expect(fieldError(locked.body, 'password')).toMatch(/too many wrong backup passwords/);
    // Even the right password is not tried while locked.
    const refused = await submit(client, secrets.backupPassword);
    expect(refused.status).toBe(429);
    expect((await lifecycleOf(client)).state).toBe('autoRestore.password.waiting');

    const metrics = (await client.get('/metrics')).body;
    expect(metrics).toMatch(/keyward_backup_password_attempts_total\{result="wrong"\} 3/);
    expect(metrics).toMatch(/keyward_backup_password_attempts_total\{result="locked_out"\} 2/);
    expect(metrics).toMatch(/keyward_backup_password_locked 1/);

    // A restart does not lift the lock.
    await server.restart();
    const after = new WebClient(server.url);
    expect((await after.get('/readyz')).status).toBe(503);
    expect(await unlock(after, await server.setupCode())).toBe('/setup-wizard/auto_restore_password/');
    const page = await after.get('/setup-wizard/auto_restore_password/');
    expect(page.body).toContain('id="locked-out"');
    const stillLocked = await submit(after, secrets.backupPassword);
    expect(stillLocked.status).toBe(429);
    expect(fieldError(stillLocked.body, 'password')).toMatch(/try again after/);
    const lifecycle = await lifecycleOf(after);
    expect(lifecycle.state).toBe('autoRestore.password.waiting');
    expect((await after.get('/metrics')).body).toMatch(/keyward_backup_password_failures 3/);
  });

  it('rate-limits the set-up code form', async () => {
    // A fresh install and process of its own: its limiter has counted nothing yet.
    await codeServer.start();
    const guesser = new WebClient(codeServer.url);
    const token = csrfToken((await guesser.get('/setup-wizard/unlock/')).body)!;
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await guesser.post('/setup-wizard/unlock/', { _csrf: token, code: `AAAA-BBBB-CCCC-DDDD-EEEE-${String(i).padStart(4, '0')}` })).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(400));
    expect(statuses[10]).toBe(429);
    // Now even the right code waits.
    expect((await guesser.post('/setup-wizard/unlock/', { _csrf: token, code: await codeServer.setupCode() })).status).toBe(429);
  });
});
