import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { testDir } from '../support/run-dir';
import { step, unlock } from './support/http-wizard';
import { KeywardServer } from './support/keyward-server';
import { certificateFingerprint, servedFingerprint } from './support/tls-probe';
import { fieldError, lifecycleOf, WebClient } from './support/web-client';

jest.setTimeout(60_000);

function openssl(args: string[]): void {
  const result = spawnSync('openssl', args, { timeout: 30_000 });
  if (result.status !== 0) throw new Error(`openssl ${args[0]}: ${result.stderr.toString()}`);
}

/**
 * The TLS credential forms not walked in a browser: PEM files uploaded, the apply cancelled (back to
 * the credential step — Trustpoint wrote a state that does not exist there), a generate form with no
 * name refused beside its field without touching the machine.
 */
describe('web: TLS credential forms', () => {
  const server = new KeywardServer('tls-forms');

  afterAll(async () => {
    await server.stop();
  });

  it('imports PEM files, cancels, refuses an empty name list, then applies a generated credential', async () => {
    const dir = testDir('tls-forms-pem');
    const key = join(dir, 'server.key');
    const certificate = join(dir, 'server.crt');
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
    openssl(['req', '-x509', '-new', '-key', key, '-subj', '/CN=pem import', '-days', '30', '-addext', 'subjectAltName=DNS:localhost', '-out', certificate]);

    await server.start();
    const client = new WebClient(server.url);
    await unlock(client, await server.setupCode());
    await step(client, '/setup-wizard/crypto-storage-setup/', { storageType: 'software' });
    expect(await step(client, '/setup-wizard/setup_mode/', { mode: 'fresh' })).toBe('/setup-wizard/select_tls_server_credential/');

    // A missing certificate file: beside its field, nothing sent.
    const start = (await lifecycleOf(client)).revision;
    const incomplete = await client.postMultipart(
      '/setup-wizard/import-tls-server-credential/',
      '/setup-wizard/import-tls-server-credential/',
      { format: 'pem' },
      { keyFile: { name: 'server.key', data: readFileSync(key) } },
    );
    expect(incomplete.status).toBe(400);
    expect(fieldError(incomplete.body, 'certificateFile')).toMatch(/certificate file/);
    expect((await lifecycleOf(client)).revision).toBe(start);

    const imported = await client.postMultipart(
      '/setup-wizard/import-tls-server-credential/',
      '/setup-wizard/import-tls-server-credential/',
      { format: 'pem' },
      { keyFile: { name: 'server.key', data: readFileSync(key) }, certificateFile: { name: 'server.crt', data: readFileSync(certificate) } },
    );
    expect(imported.status).toBe(303);
    const apply = await client.get('/setup-wizard/tls-server-credential-apply/');
    expect(/id="offered-fingerprint">([^<]*)</.exec(apply.body)?.[1]).toBe(certificateFingerprint(certificate));

    // Cancel: back to the credential step, the served certificate unchanged.
    const served = servedFingerprint(server.port);
    expect(await step(client, '/setup-wizard/tls-server-credential-apply/', {}, '/setup-wizard/tls-server-credential-apply-cancel/')).toBe('/setup-wizard/select_tls_server_credential/');
    expect((await lifecycleOf(client)).state).toBe('wizard.tlsCredential.waiting');
    expect(servedFingerprint(server.port)).toBe(served);

    // No subject alternative name: refused beside the field, the machine untouched.
    const before = (await lifecycleOf(client)).revision;
    const empty = await client.postForm('/setup-wizard/generate-tls-server-credential/', '/setup-wizard/generate-tls-server-credential/', { subjectAltNames: '  \n ' });
    expect(empty.status).toBe(400);
    expect(fieldError(empty.body, 'subjectAltNames')).toMatch(/at least one name/);
    expect((await lifecycleOf(client)).revision).toBe(before);

    expect(await step(client, '/setup-wizard/generate-tls-server-credential/', { subjectAltNames: 'localhost' })).toBe('/setup-wizard/tls-server-credential-apply/');
    const offered = /id="offered-fingerprint">([^<]*)</.exec((await client.get('/setup-wizard/tls-server-credential-apply/')).body)![1]!;
    expect(await step(client, '/setup-wizard/tls-server-credential-apply/', {})).toBe('/setup-wizard/demo-data/');
    expect(servedFingerprint(server.port)).toBe(offered);
  });
});
