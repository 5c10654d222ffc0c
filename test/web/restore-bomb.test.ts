import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kdfBombArchive, peakRssKiB } from '../support/kdf-bomb';
import { newSecret } from '../support/secrets';
import { step, unlock } from './support/http-wizard';
import { KeywardServer } from './support/keyward-server';
import { fieldError, lifecycleOf, WebClient } from './support/web-client';

jest.setTimeout(120_000);

/**
 * Issue 8 item 2 through the web: the 196-byte archive that asks Argon2id for 4 GiB and 64 passes,
 * uploaded on the set-up-mode page. A visitor without the set-up code never gets its body read; the
 * set-up session gets a clear refusal within a second, the server's peak memory stays under 300 MB
 * (its VmHWM, read from /proc), and nothing changes.
 */
describe('web: the Argon2id bomb archive on the restore page', () => {
  const server = new KeywardServer('restore-bomb');
  const passphrase = `Pp-${newSecret('bomb-passphrase')}`;
  const bomb = { archive: { name: 'bomb.kwbak', data: readFileSync(kdfBombArchive()) } };

  afterAll(async () => {
    await server.stop();
  });

  it('is refused before any derivation, within a second, under 300 MB, changing nothing', async () => {
    await server.start();
    const stranger = new WebClient(server.url);
    const before = await lifecycleOf(stranger);
    const locked = await stranger.postMultipart('/setup-wizard/unlock/', '/setup-wizard/restore/', { passphrase }, bomb);
    expect(locked.status).toBe(403);

    const client = new WebClient(server.url);
    await unlock(client, await server.setupCode());
    expect(await step(client, '/setup-wizard/crypto-storage-setup/', { storageType: 'software' })).toBe('/setup-wizard/setup_mode/');
    const atSetupMode = await lifecycleOf(client);
    expect(atSetupMode.revision).toBeGreaterThan(before.revision);

    const started = Date.now();
    const refused = await client.postMultipart('/setup-wizard/setup_mode/', '/setup-wizard/restore/', { passphrase }, bomb);
    const elapsed = Date.now() - started;
    expect(refused.status).toBe(400);
    expect(fieldError(refused.body, 'archive')).toMatch(/Argon2id parameters m=4194304 KiB, t=64, p=64 exceed/);
    expect(refused.body).not.toContain(passphrase);
    expect(elapsed).toBeLessThan(1000);
    expect(peakRssKiB(server.pid)).toBeLessThan(300 * 1024);

    const after = await lifecycleOf(client);
    expect(after.state).toBe(atSetupMode.state);
    expect(after.accepts).toContain('RESTORE_BACKUP');
    expect(existsSync(join(server.home, 'quarantine'))).toBe(false);
    expect(readdirSync(server.home).filter((name) => name.startsWith('.restore-'))).toEqual([]);
    expect(readdirSync(join(server.home, 'uploads'))).toEqual([]);
    // The page is still the set-up-mode page, and the server answers at once.
    expect((await client.get('/setup-wizard/setup_mode/')).status).toBe(200);
  });
});
