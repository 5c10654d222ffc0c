import 'reflect-metadata';
import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { TlsInputError, quote } from './errors';
import { keyMatches } from './private-key';
import { parseSubjectAltNames } from './subject-alt-names';
import { TlsMaterial, assembleMaterial } from './tls-material';
import { toPem } from './pem';

export const DEFAULT_VALIDITY_DAYS = 365;
/** Ten years: past that a self-signed server certificate is forgotten, not rotated. */
export const MAX_VALIDITY_DAYS = 3650;
/** Clients whose clock is a little behind must not see a certificate from the future. */
const BACKDATE_SECONDS = 300;
const DAY_MS = 86_400_000;

// Passed explicitly rather than relying on a global: test runners and embedders replace globals.
const crypto = webcrypto;

export interface GenerateTlsOptions {
  subjectAltNames: string[];
  /** Defaults to the first subject alternative name. */
  commonName?: string;
  validityDays?: number;
}

/** A positive 16-byte serial: the top bit clear so DER needs no sign byte, the first byte non-zero so DER keeps all 16. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f || 0x01;
  return bytes.toString('hex');
}

function commonNameFor(options: GenerateTlsOptions, names: string[]): string {
  if (options.commonName === undefined) return names[0]!.replace(/^(DNS|IP):/, '').slice(0, 64);
  const name = options.commonName.trim();
  // 64 is ub-common-name (RFC 5280 appendix A).
  if (name.length === 0 || name.length > 64 || /[\x00-\x1f\x7f]/.test(name)) {
    throw new TlsInputError('commonName', `the common name ${quote(options.commonName)} must be 1 to 64 printable characters`);
  }
  return name;
}

function validityDaysOf(options: GenerateTlsOptions): number {
  const days = options.validityDays ?? DEFAULT_VALIDITY_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_VALIDITY_DAYS) {
    throw new TlsInputError('validityDays', `the validity must be a whole number of days from 1 to ${MAX_VALIDITY_DAYS}`);
  }
  return days;
}

/**
 * A self-signed TLS server certificate on a fresh EC P-256 key: the SANs given, serverAuth only,
 * not a CA. The key never leaves this process except as the returned PKCS#8 PEM.
 */
export async function generateTlsCredential(options: GenerateTlsOptions): Promise<TlsMaterial> {
  const names = parseSubjectAltNames(options.subjectAltNames);
  const commonName = commonNameFor(options, names);
  const days = validityDaysOf(options);
  // Whole seconds: the certificate cannot hold more, and notAfter must say exactly what it holds.
  const now = Math.floor(Date.now() / 1000) * 1000;
  const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      // An explicit UTF8String: a plain string would be read as an escaped RFC 4514 value, and a
      // common name with a quote or comma in it would come out mangled.
      name: new x509.Name([{ CN: [{ utf8String: commonName }] }]),
      notBefore: new Date(now - BACKDATE_SECONDS * 1000),
      notAfter: new Date(now + days * DAY_MS),
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(
          names.map((name) => (name.startsWith('IP:') ? { type: 'ip' as const, value: name.slice(3) } : { type: 'dns' as const, value: name.slice(4) })),
          false,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = createPrivateKey({ key: toPem('PRIVATE KEY', pkcs8), format: 'pem' });
  pkcs8.fill(0);
  const leaf = new X509Certificate(Buffer.from(certificate.rawData));
  // Read back through OpenSSL: what we return is what a TLS stack will see.
  if (!keyMatches(leaf, key)) throw new Error('the generated certificate does not match its key');
  return assembleMaterial(key, leaf, [], 'subjectAltNames');
}
