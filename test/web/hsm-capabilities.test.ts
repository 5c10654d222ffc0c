import { execFileSync } from 'node:child_process';
import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CliHome } from '../support/cli';
import { newSecret } from '../support/secrets';
import { SOFTHSM_MODULE } from '../support/softhsm';
import { softHsmForm, unlock } from './support/http-wizard';
import { KeywardServer } from './support/keyward-server';
import { fieldError, WebClient } from './support/web-client';

jest.setTimeout(120_000);

/** A SoftHSM2 that can wrap only with plain CKM_AES_CBC (softhsm2.conf's slots.mechanisms): no wrap keyward uses. */
const NO_USABLE_WRAP = 'slots.mechanisms = CKM_AES_KEY_GEN,CKM_AES_CBC,CKM_AES_CBC_PAD,CKM_AES_ECB,CKM_AES_GCM\n';

describe("the token's capabilities, shown before anything is created", () => {
  const server = new KeywardServer('hsm-capabilities');

  beforeAll(async () => {
    appendFileSync(join(server.home, 'softhsm2.conf'), NO_USABLE_WRAP);
    await server.start();
  });
  afterAll(() => server.stop());

  it("the wizard's HSM page shows what the module offers and what keyward needs; the refused form says why", async () => {
    const client = new WebClient(server.url);
    await unlock(client, await server.setupCode());
    await client.postForm('/setup-wizard/crypto-storage-setup/', '/setup-wizard/crypto-storage-setup/', { storageType: 'softhsm' });
    const page = await client.get('/setup-wizard/hsm-setup/softhsm/');
    expect(page.status).toBe(200);
    const section = /<section class="card" id="token-capabilities">([\s\S]*?)<\/section>/.exec(page.body)?.[1] ?? '';
    expect(section).toMatch(/CKM_AES_KEY_WRAP \(AES key wrap, RFC 3394\), CKM_AES_KEY_WRAP_PAD \(AES key wrap with padding, RFC 5649\), CKM_AES_CBC_PAD/);
    expect(section).toMatch(/<dt>Wrap keyward will use<\/dt><dd>none: this token offers no wrap keyward can use<\/dd>/);
    expect(section).toMatch(/<dt>PIN length<\/dt><dd>4–255 characters<\/dd>/);
    expect(section).toMatch(/CKM_AES_CBC \(wrap, keys 16–32\)/);

    const refused = await client.postForm('/setup-wizard/hsm-setup/softhsm/', '/setup-wizard/hsm-setup/softhsm/', softHsmForm(newSecret('pin'), newSecret('sopin')));
    expect(refused.status).toBeGreaterThanOrEqual(400);
    const error = [...refused.body.matchAll(/id="[A-Za-z]+-error"[^>]*>([^<]*)</g)].map((m) => m[1]).join(' ') || fieldError(refused.body, 'pin') || '';
    expect(error).toMatch(/offers no usable key wrap: keyward needs CKM_AES_KEY_GEN/);
    // The script never ran: no token was initialized.
    expect(readdirSync(server.tokenDir)).toEqual([]);
  });
});

describe('keyward inspect', () => {
  it("shows the token's wrap, PIN limits and mechanisms, in text and in JSON", () => {
    const cli = new CliHome('inspect-capabilities');
    appendFileSync(join(cli.home, 'softhsm2.conf'), NO_USABLE_WRAP);
    expect(cli.run(['boot']).status).toBe(0);
    expect(cli.send('SELECT_STORAGE', { storageType: 'softhsm' }).status).toBe(0);
    const refused = cli.send('SETUP_HSM', { hsmType: 'softhsm', modulePath: SOFTHSM_MODULE, label: 'Trustpoint-SoftHSM' }, { pin: newSecret('pin'), soPin: newSecret('sopin') });
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/offers no usable key wrap: keyward needs .*Nothing was created on the token/);

    const text = cli.run(['inspect']).stdout;
    expect(text).toMatch(/^wrap: +none usable \(keyward needs CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD or CKM_AES_CBC_PAD\)$/m);
    expect(text).toMatch(/^PIN length: +4–255$/m);
    expect(text).toMatch(/^mechanisms: +CKM_AES_KEY_GEN \(generate, keys 16–32\)/m);

    const json = cli.inspect() as unknown as { tokenCapabilities: { ok: boolean; capabilities: { wrap: string | null; pinLength: unknown; mechanisms: Array<{ name: string }> } } };
    expect(json.tokenCapabilities).toMatchObject({ ok: true, capabilities: { wrap: null, pinLength: { min: 4, max: 255 } } });
    expect(json.tokenCapabilities.capabilities.mechanisms.map((m) => m.name)).toEqual(expect.arrayContaining(['CKM_AES_KEY_GEN', 'CKM_AES_CBC', 'CKM_AES_GCM']));

    // Lifted restriction, same process-free CLI: the same token now gets RFC 3394.
    execFileSync('sed', ['-i', '/^slots.mechanisms/d', join(cli.home, 'softhsm2.conf')]);
    expect(cli.send('SETUP_HSM', { hsmType: 'softhsm', modulePath: SOFTHSM_MODULE, label: 'Trustpoint-SoftHSM' }, { pin: newSecret('pin'), soPin: newSecret('sopin') }).status).toBe(0);
    expect(cli.run(['inspect']).stdout).toMatch(/^wrap: +CKM_AES_KEY_WRAP$/m);
  });
});
