import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TlsInputError, TlsMaterial, certificateFingerprint, generateTlsCredential } from '../../tls';
import { openssl, opensslFingerprint, opensslNotAfter, opensslNotBefore, opensslPublicKeyOfCertificate, opensslPublicKeyOfKey } from './openssl-cli';
import { probeTls } from './tls-probe';
import { testDir } from '../support/run-dir';

const DAY_MS = 86_400_000;

describe('generateTlsCredential', () => {
  let material: TlsMaterial;
  let text: string;
  let started: number;

  beforeAll(async () => {
    started = Date.now();
    material = await generateTlsCredential({ subjectAltNames: ['localhost', '127.0.0.1', '::1', 'PKI.example.com'] });
    text = openssl(['x509', '-noout', '-text'], { input: material.certificatePem });
  });

  it('makes an EC P-256 key, self-signed with ECDSA-SHA256', () => {
    expect(text).toMatch(/Public Key Algorithm: id-ecPublicKey/);
    expect(text).toMatch(/ASN1 OID: prime256v1/);
    expect(text).toMatch(/NIST CURVE: P-256/);
    expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
    const certificate = new X509Certificate(material.certificatePem);
    expect(certificate.subject).toBe(certificate.issuer);
    expect(certificate.verify(certificate.publicKey)).toBe(true);
    const file = join(testDir('tls-generate'), 'server.crt');
    writeFileSync(file, material.certificatePem);
    expect(openssl(['verify', '-CAfile', file, '-purpose', 'sslserver', file])).toBe(`${file}: OK\n`);
  });

  it('carries the SANs, serverAuth only, digitalSignature, CA:false, a subject key identifier', () => {
    expect(text).toMatch(/X509v3 Subject Alternative Name: \n\s+DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1, DNS:pki\.example\.com\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage: \n\s+TLS Web Server Authentication\n/);
    expect(text).toMatch(/X509v3 Key Usage: critical\n\s+Digital Signature\n/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:FALSE\n/);
    expect(text).toMatch(/X509v3 Subject Key Identifier: \n\s+[0-9A-F]{2}(:[0-9A-F]{2}){19}\n/);
    expect(text).toMatch(/Subject: CN = localhost\n/);
    expect(material.subjectAltNames).toEqual(['DNS:localhost', 'IP:127.0.0.1', 'IP:::1', 'DNS:pki.example.com']);
  });

  it('has a positive 16-byte random serial', async () => {
    const serial = /Serial Number:\n\s+([0-9a-f:]+)\n/.exec(text)![1]!.split(':');
    expect(serial).toHaveLength(16);
    expect(parseInt(serial[0]!, 16)).toBeGreaterThan(0);
    expect(parseInt(serial[0]!, 16)).toBeLessThan(0x80);
    const other = await generateTlsCredential({ subjectAltNames: ['localhost'] });
    expect(new X509Certificate(other.certificatePem).serialNumber).not.toBe(new X509Certificate(material.certificatePem).serialNumber);
  });

  it('reports the fingerprint openssl computes', () => {
    expect(material.fingerprintSha256).toMatch(/^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/);
    expect(material.fingerprintSha256).toBe(opensslFingerprint(material.certificatePem));
    expect(certificateFingerprint(material.certificatePem)).toBe(material.fingerprintSha256);
  });

  it("returns a PKCS#8 key that openssl accepts and whose public key is the certificate's", () => {
    expect(material.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    openssl(['pkey', '-check', '-noout'], { input: material.privateKeyPem });
    expect(opensslPublicKeyOfKey(material.privateKeyPem)).toBe(opensslPublicKeyOfCertificate(material.certificatePem));
    expect(material.chainPem).toBeNull();
  });

  it('is valid for 365 days from now, notAfter as openssl reads it', () => {
    expect(material.notAfter).toBe(opensslNotAfter(material.certificatePem));
    expect(material.notBefore).toBe(opensslNotBefore(material.certificatePem));
    const notAfter = Date.parse(material.notAfter);
    expect(notAfter).toBeGreaterThanOrEqual(Math.floor(started / 1000) * 1000 + 365 * DAY_MS);
    expect(notAfter).toBeLessThanOrEqual(Date.now() + 365 * DAY_MS);
    expect(Date.parse(material.notBefore!)).toBeLessThan(started);
  });

  it('takes a common name and a validity', async () => {
    const custom = await generateTlsCredential({ subjectAltNames: ['10.1.2.3'], commonName: 'keyward, Inc. "PKI"', validityDays: 30 });
    const customText = openssl(['x509', '-noout', '-subject', '-nameopt', 'RFC2253'], { input: custom.certificatePem });
    expect(customText.trim()).toBe('subject=CN=keyward\\, Inc. \\"PKI\\"');
    expect(Date.parse(custom.notAfter) - Date.now()).toBeLessThanOrEqual(30 * DAY_MS);
    expect(Date.parse(custom.notAfter) - Date.now()).toBeGreaterThan(29 * DAY_MS);
    const ipOnly = await generateTlsCredential({ subjectAltNames: ['10.1.2.3'] });
    expect(openssl(['x509', '-noout', '-subject'], { input: ipOnly.certificatePem }).trim()).toBe('subject=CN = 10.1.2.3');
  });

  it.each([
    [{ subjectAltNames: [] }, 'subjectAltNames'],
    [{ subjectAltNames: ['bad_name'] }, 'subjectAltNames'],
    [{ subjectAltNames: ['localhost'], validityDays: 0 }, 'validityDays'],
    [{ subjectAltNames: ['localhost'], validityDays: 1.5 }, 'validityDays'],
    [{ subjectAltNames: ['localhost'], validityDays: 3651 }, 'validityDays'],
    [{ subjectAltNames: ['localhost'], commonName: '' }, 'commonName'],
    [{ subjectAltNames: ['localhost'], commonName: 'x'.repeat(65) }, 'commonName'],
    [{ subjectAltNames: ['localhost'], commonName: 'a\nb' }, 'commonName'],
  ])('refuses %j, naming the field', async (options, field) => {
    const attempt = generateTlsCredential(options);
    await expect(attempt).rejects.toBeInstanceOf(TlsInputError);
    await expect(attempt).rejects.toMatchObject({ field });
  });

  it('is served by a real https server; a TLS client pinned to it sees the fingerprint and the SANs', async () => {
    for (const servername of ['localhost', 'pki.example.com', '127.0.0.1']) {
      const seen = await probeTls(material, { trust: material.certificatePem, servername });
      expect(seen.response).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(seen.response).toMatch(/keyward tls ok$/);
      expect(seen.peer.fingerprint256).toBe(material.fingerprintSha256);
      expect(seen.checked.fingerprint256).toBe(material.fingerprintSha256);
      expect(seen.checked.subjectaltname).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:pki.example.com');
    }
  });

  it('is refused by that client for a name it does not carry', async () => {
    await expect(probeTls(material, { trust: material.certificatePem, servername: 'other.example.com' })).rejects.toThrow(/Hostname\/IP does not match certificate's altnames/);
  });
});
