import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { connect } from 'node:tls';
import type { TlsMaterial } from '../../tls';
import { secureContextOptions } from '../../server/web/live-tls';
import { testDir } from '../support/run-dir';
import { KeywardServer } from './support/keyward-server';

jest.setTimeout(120_000);

/** Every suite below TLS 1.3 this host's OpenSSL knows, security level 0: CBC, SHA-1, CCM8, ARIA, RSA key exchange… */
function everyTls12Suite(): string[] {
  const lines = execFileSync('openssl', ['ciphers', '-v', 'ALL:COMPLEMENTOFALL:@SECLEVEL=0'], { encoding: 'utf8' }).trim().split('\n');
  return lines
    .map((line) => line.trim().split(/\s+/))
    .filter(([, version]) => version !== 'TLSv1.3')
    .map(([name]) => name!);
}

/** One TLS 1.2 handshake offering only `suite`: the suite the server chose, or null if it refused. */
function handshake(port: number, suite: string, maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.2'): Promise<string | null> {
  return new Promise((resolve) => {
    let socket;
    try {
      socket = connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, minVersion: maxVersion, maxVersion, ciphers: `${suite}:@SECLEVEL=0` });
    } catch {
      return resolve(null); // the client cannot offer it at all (PSK, SRP without callbacks)
    }
    socket.setTimeout(10_000, () => socket.destroy());
    socket.once('secureConnect', () => {
      resolve(socket.getCipher().name);
      socket.end();
    });
    socket.once('error', () => resolve(null));
    socket.once('close', () => resolve(null));
  });
}

async function acceptedSuites(port: number): Promise<string[]> {
  const accepted: string[] = [];
  for (const suite of everyTls12Suite()) {
    const chosen = await handshake(port, suite);
    if (chosen !== null) accepted.push(chosen);
  }
  return accepted.sort();
}

/**
 * Issue 8 item 10: TLS 1.2 offered CBC/SHA-1, CCM8 and ARIA suites. keyward offers Mozilla's
 * "intermediate" profile with ECDHE and AEAD only; checked by handshakes offering one suite at a
 * time, every suite OpenSSL knows, against the real server and against an RSA credential.
 */
describe('web: TLS cipher suites', () => {
  const server = new KeywardServer('tls-ciphers');

  afterAll(async () => {
    await server.stop();
  });

  it('the running server (its generated ECDSA credential) accepts only ECDHE with an AEAD on TLS 1.2, and TLS 1.3', async () => {
    await server.start();
    expect(await acceptedSuites(server.port)).toEqual(['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305']);
    expect(await handshake(server.port, 'DEFAULT', 'TLSv1.3')).toMatch(/^TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/);
  });

  it('an RSA credential gets the same profile (no static RSA, no CBC)', async () => {
    const dir = testDir('tls-ciphers-rsa');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=localhost'], {
      stdio: 'ignore',
    });
    const material = { privateKeyPem: readFileSync(join(dir, 'key.pem'), 'utf8'), certificatePem: readFileSync(join(dir, 'cert.pem'), 'utf8'), chainPem: null } as unknown as TlsMaterial;
    const https = createServer(secureContextOptions(material), (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    try {
      expect(await acceptedSuites((https.address() as AddressInfo).port)).toEqual(['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']);
    } finally {
      await new Promise((resolve) => https.close(resolve));
    }
  });
});
