import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { TlsMaterial, importPemFiles } from '../../tls';
import { testDir } from '../support/run-dir';
import { newSecret } from '../support/secrets';
import { Ca, ecKey, issueLeaf, makeCa, openssl, opensslFingerprint, opensslNotAfter, opensslNotBefore, rsaKey, selfSigned } from './openssl-cli';
import { probeTls } from './tls-probe';
import { inputError } from './input-error';

/** A self-signed certificate with chosen dates, which OpenSSL 3.0's command line cannot make. */
async function datedCertificate(dir: string, name: string, notBefore: Date, notAfter: Date): Promise<{ keyFile: string; certificateFile: string }> {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: 'CN=dated',
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'dated.example' }])],
    },
    webcrypto,
  );
  const keyFile = join(dir, `${name}.key`);
  const certificateFile = join(dir, `${name}.crt`);
  writeFileSync(keyFile, x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'));
  writeFileSync(certificateFile, certificate.toString('pem'));
  return { keyFile, certificateFile };
}

describe('importPemFiles', () => {
  let dir: string;
  let ca: Ca;
  let keyFile: string;
  let certificateFile: string;
  let leafPem: string;
  let caPem: string;

  beforeAll(() => {
    dir = testDir('tls-pem');
    ca = makeCa(dir, 'root');
    keyFile = ecKey(dir, 'leaf.key');
    certificateFile = issueLeaf(dir, 'leaf', keyFile, ca);
    leafPem = readFileSync(certificateFile, 'utf8');
    caPem = readFileSync(ca.certificate, 'utf8');
  });

  it('imports a PKCS#8 key with its certificate', async () => {
    const material = await importPemFiles({ keyFile, certificateFile });
    expect(material).toEqual<TlsMaterial>({
      privateKeyPem: readFileSync(keyFile, 'utf8'),
      certificatePem: leafPem,
      chainPem: null,
      fingerprintSha256: opensslFingerprint(leafPem),
      subjectAltNames: ['DNS:localhost', 'IP:127.0.0.1'],
      notAfter: opensslNotAfter(leafPem),
      notBefore: opensslNotBefore(leafPem),
    });
  });

  it('takes the chain from a separate file, or from the certificate file after the leaf, without duplicates', async () => {
    const fullchain = join(dir, 'fullchain.pem');
    writeFileSync(fullchain, leafPem + caPem);
    const fromChainFile = await importPemFiles({ keyFile, certificateFile, chainFile: ca.certificate });
    const fromFullchain = await importPemFiles({ keyFile, certificateFile: fullchain, chainFile: null });
    const fromBoth = await importPemFiles({ keyFile, certificateFile: fullchain, chainFile: fullchain });
    for (const material of [fromChainFile, fromFullchain, fromBoth]) {
      expect(material.certificatePem).toBe(leafPem);
      expect(material.chainPem).toBe(caPem);
    }
    const seen = await probeTls(fromFullchain, { trust: caPem, servername: 'localhost' });
    expect(seen.chainFingerprints).toEqual([fromFullchain.fingerprintSha256, opensslFingerprint(caPem)]);
  });

  it('normalizes CRLF files and text around the blocks', async () => {
    const messyKey = join(dir, 'messy.key');
    const messyCertificate = join(dir, 'messy.crt');
    writeFileSync(messyKey, `# exported by hand\r\n${readFileSync(keyFile, 'utf8').replace(/\n/g, '\r\n')}`);
    writeFileSync(messyCertificate, `subject=CN = leaf\r\n${leafPem.replace(/\n/g, '\r\n')}trailing words\r\n`);
    const material = await importPemFiles({ keyFile: messyKey, certificateFile: messyCertificate });
    expect(material.privateKeyPem).toBe(readFileSync(keyFile, 'utf8'));
    expect(material.certificatePem).toBe(leafPem);
  });

  it('turns a SEC1 "EC PRIVATE KEY" into the PKCS#8 that openssl writes for it', async () => {
    const sec1 = join(dir, 'sec1.key');
    openssl(['ec', '-in', keyFile, '-out', sec1]);
    expect(readFileSync(sec1, 'utf8')).toMatch(/^-----BEGIN EC PRIVATE KEY-----\n/);
    const material = await importPemFiles({ keyFile: sec1, certificateFile });
    expect(material.privateKeyPem).toBe(openssl(['pkey', '-in', sec1]));
    expect(material.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('takes the key openssl ecparam -genkey writes, EC PARAMETERS block first', async () => {
    const withParameters = join(dir, 'ecparam.key');
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-out', withParameters]);
    const certificate = selfSigned(dir, 'ecparam', withParameters);
    expect(readFileSync(withParameters, 'utf8')).toMatch(/^-----BEGIN EC PARAMETERS-----/);
    const material = await importPemFiles({ keyFile: withParameters, certificateFile: certificate });
    expect(material.privateKeyPem).toBe(openssl(['pkey', '-in', withParameters]));
  });

  it('turns a PKCS#1 "RSA PRIVATE KEY" into PKCS#8, and the RSA credential serves TLS', async () => {
    const rsa = rsaKey(dir, 'rsa8.key');
    const pkcs1 = join(dir, 'rsa1.key');
    openssl(['rsa', '-traditional', '-in', rsa, '-out', pkcs1]);
    expect(readFileSync(pkcs1, 'utf8')).toMatch(/^-----BEGIN RSA PRIVATE KEY-----\n/);
    const certificate = issueLeaf(dir, 'rsa-leaf', rsa, ca);
    const material = await importPemFiles({ keyFile: pkcs1, certificateFile: certificate, chainFile: ca.certificate });
    expect(material.privateKeyPem).toBe(readFileSync(rsa, 'utf8'));
    const seen = await probeTls(material, { trust: caPem, servername: '127.0.0.1' });
    expect(seen.peer.fingerprint256).toBe(material.fingerprintSha256);
  });

  it('refuses a key that does not belong to the certificate', async () => {
    const other = ecKey(dir, 'other.key');
    const error = await inputError(importPemFiles({ keyFile: other, certificateFile }));
    expect(error.field).toBe('keyFile');
    expect(error.message).toMatch(/does not belong to the certificate/);
    // The CA's certificate first in the file is taken as the leaf, and the leaf's key does not match it.
    const reversed = join(dir, 'reversed.pem');
    writeFileSync(reversed, caPem + leafPem);
    expect((await inputError(importPemFiles({ keyFile, certificateFile: reversed }))).field).toBe('keyFile');
  });

  it('refuses encrypted keys, PKCS#8 and traditional, and does not prompt', async () => {
    const password = newSecret('pem-key-password');
    const encrypted8 = join(dir, 'encrypted8.key');
    const encrypted1 = join(dir, 'encrypted1.key');
    openssl(['pkey', '-in', keyFile, '-aes256', '-passout', 'stdin', '-out', encrypted8], { input: `${password}\n` });
    openssl(['ec', '-in', keyFile, '-aes256', '-passout', 'stdin', '-out', encrypted1], { input: `${password}\n` });
    expect(readFileSync(encrypted8, 'utf8')).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    expect(readFileSync(encrypted1, 'utf8')).toMatch(/Proc-Type: 4,ENCRYPTED/);
    for (const file of [encrypted8, encrypted1]) {
      const error = await inputError(importPemFiles({ keyFile: file, certificateFile }));
      expect(error.field).toBe('keyFile');
      expect(error.message).toMatch(/the private key is encrypted/);
    }
  });

  it('refuses what is not a usable PEM key, naming the field', async () => {
    const der = join(dir, 'key.der');
    openssl(['pkey', '-in', keyFile, '-outform', 'DER', '-out', der]);
    const ed25519 = join(dir, 'ed25519.key');
    openssl(['genpkey', '-algorithm', 'ED25519', '-out', ed25519]);
    const weak = rsaKey(dir, 'weak.key', 1024);
    const secp256k1 = join(dir, 'k1.key');
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1', '-out', secp256k1]);
    const two = join(dir, 'two.key');
    writeFileSync(two, readFileSync(keyFile, 'utf8') + readFileSync(weak, 'utf8'));
    const cases: Array<[string, RegExp]> = [
      [der, /no PEM private key found/],
      [certificateFile, /no PEM private key found/],
      [ed25519, /ed25519 key is not supported/],
      [weak, /1024 bits; at least 2048/],
      [secp256k1, /curve secp256k1/],
      [two, /2 private keys/],
      [join(dir, 'absent.key'), /does not exist/],
      [dir, /not a regular file/],
    ];
    for (const [file, message] of cases) {
      const error = await inputError(importPemFiles({ keyFile: file, certificateFile }));
      expect(error.field).toBe('keyFile');
      expect(error.message).toMatch(message);
    }
  });

  it('refuses a certificate or chain file without a certificate', async () => {
    const noCertificate = await inputError(importPemFiles({ keyFile, certificateFile: keyFile }));
    expect(noCertificate.field).toBe('certificateFile');
    const garbled = join(dir, 'garbled.crt');
    writeFileSync(garbled, '-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHHIG\n-----END CERTIFICATE-----\n');
    expect((await inputError(importPemFiles({ keyFile, certificateFile: garbled }))).field).toBe('certificateFile');
    expect((await inputError(importPemFiles({ keyFile, certificateFile, chainFile: keyFile }))).field).toBe('chainFile');
  });

  it('imports expired and not yet valid certificates with their real dates, UTCTime and GeneralizedTime', async () => {
    const cases = [
      [new Date('2019-03-01T08:00:00Z'), new Date('2020-03-01T08:00:00Z')],
      [new Date('2049-06-01T00:00:00Z'), new Date('2051-12-31T23:59:59Z')],
      [new Date('1999-12-31T23:59:59Z'), new Date('2000-01-01T00:00:01Z')],
    ] as const;
    for (const [index, [notBefore, notAfter]] of cases.entries()) {
      const files = await datedCertificate(dir, `dated-${index}`, notBefore, notAfter);
      const material = await importPemFiles(files);
      expect(material.notBefore).toBe(notBefore.toISOString());
      expect(material.notAfter).toBe(notAfter.toISOString());
      expect(material.notAfter).toBe(opensslNotAfter(material.certificatePem));
      expect(material.subjectAltNames).toEqual(['DNS:dated.example']);
    }
  });

  it('reports only the DNS and IP names of a certificate with other kinds of SAN too', async () => {
    const key = ecKey(dir, 'exotic.key');
    const certificate = selfSigned(dir, 'exotic', key, 'DNS:Mixed.Example,email:ops@example.com,URI:https://pki.example/x,otherName:1.2.3.4;UTF8:hello,IP:2001:DB8:0:0:0:0:0:1,IP:10.0.0.1');
    const material = await importPemFiles({ keyFile: key, certificateFile: certificate });
    expect(material.subjectAltNames).toEqual(['DNS:mixed.example', 'IP:2001:db8::1', 'IP:10.0.0.1']);
    const noSan = join(dir, 'no-san.crt');
    openssl(['req', '-x509', '-new', '-key', key, '-subj', '/CN=legacy', '-days', '1', '-out', noSan]);
    expect((await importPemFiles({ keyFile: key, certificateFile: noSan })).subjectAltNames).toEqual([]);
  });
});
