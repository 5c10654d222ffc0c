import { X509Certificate } from 'node:crypto';
import { TlsInputError } from './errors';
import { parseCertificates } from './certificate';
import { readInputFile } from './input-file';
import { SECRET_FD, runOpenssl } from './openssl';
import { pemBlocks } from './pem';
import { keyMatches, parsePrivateKey } from './private-key';
import { TlsMaterial, assembleMaterial } from './tls-material';

export const WRONG_PKCS12_PASSWORD = 'the PKCS#12 password is wrong or the file is damaged';

type Failure = 'password' | 'format' | 'unsupported' | 'legacy-unavailable' | 'other';

/** What openssl pkcs12's stderr means; the order matters, a MAC failure is reported before anything else. */
function classify(stderr: string): Failure {
  if (/unable to load provider legacy/i.test(stderr)) return 'legacy-unavailable';
  if (/mac verify error|invalid password|bad decrypt|maybe wrong password/i.test(stderr)) return 'password';
  if (/unsupported|inner_evp_generic_fetch/i.test(stderr)) return 'unsupported';
  if (/asn1|wrong tag|not enough data|Type=PKCS12/i.test(stderr)) return 'format';
  return 'other';
}

function firstLine(stderr: string): string {
  return (stderr.split('\n').find((line) => line.trim().length > 0) ?? 'no message').slice(0, 200);
}

function failure(kind: Failure, stderr: string): Error {
  switch (kind) {
    case 'password':
      return new TlsInputError('pkcs12Password', WRONG_PKCS12_PASSWORD);
    case 'format':
      return new TlsInputError('pkcs12File', 'the file is not a PKCS#12 (.p12/.pfx) file');
    case 'unsupported':
      return new TlsInputError('pkcs12File', 'the PKCS#12 file uses an algorithm this OpenSSL cannot read, even with its legacy provider');
    case 'legacy-unavailable':
      return new Error('the PKCS#12 file needs the OpenSSL legacy provider (RC2/3DES), which this host does not have');
    default:
      // openssl never prints the password, so its first line is safe to show.
      return new Error(`openssl pkcs12 failed: ${firstLine(stderr)}`);
  }
}

/**
 * Opens a PKCS#12 file with openssl, the password on a pipe (see runOpenssl). Modern files (AES,
 * PBKDF2) open with the default provider; old ones (RC2-40, 3DES, as Windows and Java exported for
 * years) need -legacy, tried only when the first attempt fails on an unsupported algorithm.
 */
export async function importPkcs12(file: string, password: string): Promise<TlsMaterial> {
  if (typeof password !== 'string') throw new TlsInputError('pkcs12Password', 'the PKCS#12 password is missing (give an empty string for none)');
  if (/[\r\n\0]/.test(password)) {
    throw new TlsInputError('pkcs12Password', 'the PKCS#12 password contains a line break or NUL character, which openssl cannot take');
  }
  const bytes = await readInputFile(file, 'pkcs12File');
  if (bytes.subarray(0, 64).toString('latin1').includes('-----BEGIN')) {
    throw new TlsInputError('pkcs12File', 'the file is PEM text, not a PKCS#12 file; import it as PEM key and certificate files');
  }
  const passin = ['-passin', `fd:${SECRET_FD}`];
  let result = await runOpenssl(['pkcs12', '-nodes', ...passin], { input: bytes, secret: password });
  if (result.code !== 0 && classify(result.stderr) === 'unsupported') {
    result = await runOpenssl(['pkcs12', '-legacy', '-nodes', ...passin], { input: bytes, secret: password });
  }
  if (result.code !== 0) throw failure(classify(result.stderr), result.stderr);
  return materialFromPkcs12Output(result.stdout.toString('utf8'));
}

function materialFromPkcs12Output(text: string): TlsMaterial {
  if (!pemBlocks(text).some((block) => block.label.endsWith('PRIVATE KEY'))) {
    throw new TlsInputError('pkcs12File', 'the PKCS#12 file holds no private key (it may be a certificate-only export)');
  }
  const key = parsePrivateKey(text, 'pkcs12File');
  const certificates = parseCertificates(text, 'pkcs12File');
  if (certificates.length === 0) throw new TlsInputError('pkcs12File', 'the PKCS#12 file holds no certificate');
  const matching = certificates.filter((certificate) => keyMatches(certificate, key));
  // A re-issued CA certificate can share the key; the server's own certificate is the non-CA one.
  const leaf: X509Certificate | undefined = matching.find((certificate) => !certificate.ca) ?? matching[0];
  if (!leaf) throw new TlsInputError('pkcs12File', 'no certificate in the PKCS#12 file belongs to its private key');
  return assembleMaterial(
    key,
    leaf,
    certificates.filter((certificate) => certificate !== leaf),
    'pkcs12File',
  );
}
