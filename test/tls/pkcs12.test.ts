import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OpensslSpawn, WRONG_PKCS12_PASSWORD, importPkcs12, observeOpensslSpawns } from '../../tls';
import { testDir } from '../support/run-dir';
import { newSecret } from '../support/secrets';
import { Ca, ecKey, exportPkcs12, issueLeaf, makeCa, openssl, opensslFingerprint, opensslNotAfter, opensslStatus, rsaKey, selfSigned } from './openssl-cli';
import { probeTls } from './tls-probe';
import { inputError } from './input-error';

interface SeenProcess extends OpensslSpawn {
  cmdline: string;
  environ: string;
}

/**
 * Records each openssl that importPkcs12 starts, as the kernel shows it to every user of the host:
 * /proc/PID/cmdline and /proc/PID/environ, read while the process waits for its input.
 */
async function watchSpawns<T>(action: () => Promise<T>): Promise<{ result: T | Error; seen: SeenProcess[] }> {
  const seen: SeenProcess[] = [];
  const stop = observeOpensslSpawns((spawned) => {
    seen.push({
      ...spawned,
      cmdline: readFileSync(`/proc/${spawned.pid}/cmdline`, 'utf8'),
      environ: readFileSync(`/proc/${spawned.pid}/environ`, 'utf8'),
    });
  });
  try {
    return { result: await action().catch((error: Error) => error), seen };
  } finally {
    stop();
  }
}

describe('importPkcs12', () => {
  const password = newSecret('p12-password');
  let dir: string;
  let ca: Ca;
  let intermediate: Ca;
  let ecLeafKey: string;
  let ecLeaf: string;
  let modern: string;

  beforeAll(() => {
    dir = testDir('tls-pkcs12');
    ca = makeCa(dir, 'root');
    intermediate = makeCa(dir, 'intermediate', ca);
    ecLeafKey = ecKey(dir, 'leaf.key');
    ecLeaf = issueLeaf(dir, 'leaf', ecLeafKey, intermediate, 'DNS:localhost,IP:127.0.0.1,IP:::1');
    modern = exportPkcs12(dir, 'chain.p12', { key: ecLeafKey, certificate: ecLeaf, chain: [ca.certificate, intermediate.certificate], password });
  });

  it('opens an EC PKCS#12 with a chain: the key, the leaf, the chain in path order', async () => {
    const material = await importPkcs12(modern, password);
    const leafPem = openssl(['x509', '-in', ecLeaf]);
    expect(material.certificatePem).toBe(leafPem);
    expect(material.fingerprintSha256).toBe(opensslFingerprint(leafPem));
    expect(material.privateKeyPem).toBe(openssl(['pkey', '-in', ecLeafKey]));
    // Exported root first; the material starts from the leaf's issuer.
    expect(material.chainPem).toBe(openssl(['x509', '-in', intermediate.certificate]) + openssl(['x509', '-in', ca.certificate]));
    expect(material.subjectAltNames).toEqual(['DNS:localhost', 'IP:127.0.0.1', 'IP:::1']);
    expect(material.notAfter).toBe(opensslNotAfter(leafPem));
  });

  it('gives material a TLS client trusting only the root accepts', async () => {
    const material = await importPkcs12(modern, password);
    const seen = await probeTls(material, { trust: readFileSync(ca.certificate, 'utf8'), servername: 'localhost' });
    expect(seen.peer.fingerprint256).toBe(material.fingerprintSha256);
    expect(seen.checked.subjectaltname).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(seen.chainFingerprints).toEqual([material.fingerprintSha256, opensslFingerprint(readFileSync(intermediate.certificate, 'utf8')), opensslFingerprint(readFileSync(ca.certificate, 'utf8'))]);
  });

  it('opens an RSA PKCS#12 without a chain, and serves it', async () => {
    const key = rsaKey(dir, 'rsa.key');
    const certificate = selfSigned(dir, 'rsa', key, 'DNS:localhost,IP:127.0.0.1');
    const file = exportPkcs12(dir, 'rsa.p12', { key, certificate, password });
    const material = await importPkcs12(file, password);
    expect(material.chainPem).toBeNull();
    expect(material.privateKeyPem).toBe(openssl(['pkey', '-in', key]));
    expect(openssl(['pkey', '-noout', '-text'], { input: material.privateKeyPem })).toMatch(/Private-Key: \(2048 bit, 2 primes\)/);
    const seen = await probeTls(material, { trust: material.certificatePem, servername: '127.0.0.1' });
    expect(seen.peer.fingerprint256).toBe(material.fingerprintSha256);
  });

  it('opens an old RC2-40/3DES file by retrying with -legacy', async () => {
    const file = exportPkcs12(dir, 'legacy.p12', { key: ecLeafKey, certificate: ecLeaf, chain: [intermediate.certificate], password, legacy: true });
    expect(opensslStatus(['pkcs12', '-in', file, '-nodes', '-passin', 'stdin'], `${password}\n`).stderr).toMatch(/RC2-40-CBC/);
    const { result, seen } = await watchSpawns(() => importPkcs12(file, password));
    if (result instanceof Error) throw result;
    expect(result.fingerprintSha256).toBe(opensslFingerprint(readFileSync(ecLeaf, 'utf8')));
    expect(result.chainPem).toBe(openssl(['x509', '-in', intermediate.certificate]));
    expect(seen.map((process) => process.args.includes('-legacy'))).toEqual([false, true]);
  });

  it('opens a file whose password is empty', async () => {
    const file = exportPkcs12(dir, 'empty-password.p12', { key: ecLeafKey, certificate: ecLeaf, password: '' });
    expect((await importPkcs12(file, '')).certificatePem).toBe(openssl(['x509', '-in', ecLeaf]));
  });

  it('never puts the password in the arguments or the environment of openssl', async () => {
    const wrong = newSecret('wrong-p12-password');
    for (const attempt of [password, wrong]) {
      const { seen } = await watchSpawns(() => importPkcs12(modern, attempt));
      expect(seen.length).toBeGreaterThan(0);
      for (const process of seen) {
        expect(process.cmdline.split('\0')).toEqual(['openssl', ...process.args, '']);
        expect(process.args).toContain('fd:3');
        expect(process.cmdline).not.toContain(attempt);
        expect(process.environ).not.toContain(attempt);
      }
    }
  });

  it("gives openssl none of keyward's own environment (a database URL may hold a password)", async () => {
    const dbPassword = newSecret('db-password');
    process.env.DATABASE_URL = `postgres://keyward:${dbPassword}@127.0.0.1:5432/keyward`;
    try {
      const { seen } = await watchSpawns(() => importPkcs12(modern, password));
      expect(seen.length).toBeGreaterThan(0);
      for (const child of seen) {
        expect(child.environ).not.toContain(dbPassword);
        const names = child.environ
          .split('\0')
          .filter(Boolean)
          .map((entry) => entry.split('=')[0]);
        expect(names.every((name) => ['PATH', 'HOME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TMPDIR', 'TZ'].includes(name!))).toBe(true);
      }
    } finally {
      delete process.env.DATABASE_URL;
    }
  });

  it('says a wrong password is wrong, names the field, and does not repeat the password', async () => {
    const wrong = newSecret('wrong-p12-password');
    for (const file of [modern, exportPkcs12(dir, 'legacy-wrong.p12', { key: ecLeafKey, certificate: ecLeaf, password, legacy: true })]) {
      const error = await inputError(importPkcs12(file, wrong));
      expect(error.field).toBe('pkcs12Password');
      expect(error.message).toBe(WRONG_PKCS12_PASSWORD);
      expect(`${error.message} ${error.stack}`).not.toContain(wrong);
      expect(`${error.message} ${error.stack}`).not.toContain(password);
    }
  });

  it('reports a damaged file as a wrong password or damage', async () => {
    const bytes = readFileSync(modern);
    bytes[bytes.length - 40]! ^= 0xff;
    const file = join(dir, 'damaged.p12');
    writeFileSync(file, bytes);
    const error = await inputError(importPkcs12(file, password));
    expect(error.field).toBe('pkcs12Password');
    expect(error.message).toBe(WRONG_PKCS12_PASSWORD);
  });

  it('says random bytes, an empty file, a PEM file and a missing file are not PKCS#12 files', async () => {
    const random = join(dir, 'random.p12');
    writeFileSync(random, randomBytes(2048));
    const empty = join(dir, 'empty.p12');
    writeFileSync(empty, '');
    const cases: Array<[string, RegExp]> = [
      [random, /not a PKCS#12 \(\.p12\/\.pfx\) file/],
      [empty, /is empty/],
      [ecLeaf, /PEM text, not a PKCS#12 file/],
      [join(dir, 'absent.p12'), /does not exist/],
    ];
    for (const [file, message] of cases) {
      const error = await inputError(importPkcs12(file, password));
      expect(error.field).toBe('pkcs12File');
      expect(error.message).toMatch(message);
      expect(error.message).not.toContain(password);
    }
  });

  it('refuses a file without a private key, or without a certificate', async () => {
    const certificateOnly = exportPkcs12(dir, 'no-key.p12', { certificate: ecLeaf, chain: [ca.certificate], password });
    const noKey = await inputError(importPkcs12(certificateOnly, password));
    expect(noKey.field).toBe('pkcs12File');
    expect(noKey.message).toMatch(/holds no private key/);

    const keyOnly = join(dir, 'key-only.p12');
    openssl(['pkcs12', '-export', '-in', ecLeafKey, '-nocerts', '-passout', 'stdin', '-out', keyOnly], { input: `${password}\n` });
    const noCertificate = await inputError(importPkcs12(keyOnly, password));
    expect(noCertificate.field).toBe('pkcs12File');
    expect(noCertificate.message).toMatch(/holds no certificate/);
  });

  it('refuses a password openssl cannot take on a pipe', async () => {
    const error = await inputError(importPkcs12(modern, 'line\nbreak'));
    expect(error.field).toBe('pkcs12Password');
    expect(error.message).not.toContain('line\nbreak');
  });
});
