import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The openssl command line as the tests' independent witness and fixture maker. A password goes on
 * stdin (`-passout stdin`), never in the arguments.
 */
export function openssl(args: string[], options: { input?: string | Buffer; cwd?: string } = {}): string {
  const result = spawnSync('openssl', args, { input: options.input ?? '', cwd: options.cwd, maxBuffer: 16 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`openssl ${args[0]} failed (${result.status}): ${result.stderr.toString()}`);
  return result.stdout.toString();
}

/** openssl's own output, success or not, for tests that look at a failure. */
export function opensslStatus(args: string[], input = ''): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('openssl', args, { input });
  return { status: result.status, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
}

export function ecKey(dir: string, name: string): string {
  const file = join(dir, name);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
  return file;
}

export function rsaKey(dir: string, name: string, bits = 2048): string {
  const file = join(dir, name);
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${bits}`, '-out', file]);
  return file;
}

export interface Ca {
  key: string;
  certificate: string;
}

export function makeCa(dir: string, name = 'ca', issuer?: Ca): Ca {
  const key = ecKey(dir, `${name}.key`);
  const certificate = join(dir, `${name}.crt`);
  const extensions = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
  if (!issuer) {
    openssl(['req', '-x509', '-new', '-key', key, '-subj', `/CN=keyward test ${name}`, '-days', '30', ...extensions, '-out', certificate]);
    return { key, certificate };
  }
  const csr = join(dir, `${name}.csr`);
  openssl(['req', '-new', '-key', key, '-subj', `/CN=keyward test ${name}`, ...extensions, '-out', csr]);
  openssl(['x509', '-req', '-in', csr, '-CA', issuer.certificate, '-CAkey', issuer.key, '-set_serial', '0x0a', '-days', '30', '-copy_extensions', 'copyall', '-out', certificate]);
  return { key, certificate };
}

/** A server certificate for `key` with the given SANs (openssl syntax), signed by `ca`. */
export function issueLeaf(dir: string, name: string, key: string, ca: Ca, subjectAltName = 'DNS:localhost,IP:127.0.0.1'): string {
  const csr = join(dir, `${name}.csr`);
  const certificate = join(dir, `${name}.crt`);
  openssl(['req', '-new', '-key', key, '-subj', `/CN=${name}`, '-addext', `subjectAltName=${subjectAltName}`, '-addext', 'extendedKeyUsage=serverAuth', '-out', csr]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.certificate, '-CAkey', ca.key, '-set_serial', '0x1234', '-days', '30', '-copy_extensions', 'copyall', '-out', certificate]);
  return certificate;
}

export function selfSigned(dir: string, name: string, key: string, subjectAltName = 'DNS:localhost'): string {
  const certificate = join(dir, `${name}.crt`);
  openssl(['req', '-x509', '-new', '-key', key, '-subj', `/CN=${name}`, '-days', '30', '-addext', `subjectAltName=${subjectAltName}`, '-out', certificate]);
  return certificate;
}

/** `openssl pkcs12 -export`, the export password on stdin. */
export function exportPkcs12(dir: string, name: string, parts: { key?: string; certificate: string; chain?: string[]; password: string; legacy?: boolean }): string {
  const file = join(dir, name);
  const args = ['pkcs12', '-export', '-in', parts.certificate, '-passout', 'stdin', '-out', file];
  if (parts.key) args.push('-inkey', parts.key);
  else args.push('-nokeys');
  if (parts.chain && parts.chain.length > 0) {
    const chainFile = join(dir, `${name}.chain.pem`);
    writeFileSync(chainFile, parts.chain.map((path) => openssl(['x509', '-in', path])).join(''));
    args.push('-certfile', chainFile);
  }
  if (parts.legacy) args.push('-legacy', '-certpbe', 'PBE-SHA1-RC2-40', '-keypbe', 'PBE-SHA1-3DES');
  openssl(args, { input: `${parts.password}\n` });
  return file;
}

/** openssl's SHA-256 fingerprint of a PEM certificate: "AB:CD:...". */
export function opensslFingerprint(certificatePem: string): string {
  return openssl(['x509', '-noout', '-fingerprint', '-sha256'], { input: certificatePem })
    .trim()
    .replace(/^sha256 Fingerprint=/i, '');
}

/** openssl's view of a public key, as PEM SubjectPublicKeyInfo. */
export function opensslPublicKeyOfKey(privateKeyPem: string): string {
  return openssl(['pkey', '-pubout'], { input: privateKeyPem });
}

export function opensslPublicKeyOfCertificate(certificatePem: string): string {
  return openssl(['x509', '-noout', '-pubkey'], { input: certificatePem });
}

/** notAfter as openssl reads it, converted to the ISO form keyward returns. */
export function opensslNotAfter(certificatePem: string): string {
  const line = openssl(['x509', '-noout', '-enddate', '-dateopt', 'iso_8601'], { input: certificatePem }).trim();
  return new Date(line.replace(/^notAfter=/, '').replace(' ', 'T')).toISOString();
}

export function opensslNotBefore(certificatePem: string): string {
  const line = openssl(['x509', '-noout', '-startdate', '-dateopt', 'iso_8601'], { input: certificatePem }).trim();
  return new Date(line.replace(/^notBefore=/, '').replace(' ', 'T')).toISOString();
}
