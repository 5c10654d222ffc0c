import { KeyObject, X509Certificate, createPrivateKey } from 'node:crypto';
import { TlsInputError } from './errors';
import { pemBlocks } from './pem';

const KEY_LABELS = new Set(['PRIVATE KEY', 'EC PRIVATE KEY', 'RSA PRIVATE KEY']);
/** The curves TLS clients (browsers, curl, Node) accept for a server certificate. */
const CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);
const MIN_RSA_BITS = 2048;

const ENCRYPTED = 'the private key is encrypted; keyward takes an unencrypted key (decrypt it with "openssl pkey -in KEY -out PLAIN") or a PKCS#12 file with its password';

/**
 * The one private key in a PEM text: PKCS#8, SEC1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY").
 * Other blocks (EC PARAMETERS, certificates) are ignored. Only RSA of 2048 bits or more and EC on
 * P-256, P-384 or P-521 are taken, the keys every TLS client can use.
 */
export function parsePrivateKey(text: string, field: string): KeyObject {
  const blocks = pemBlocks(text);
  if (blocks.some((block) => block.label === 'ENCRYPTED PRIVATE KEY')) throw new TlsInputError(field, ENCRYPTED);
  const keys = blocks.filter((block) => KEY_LABELS.has(block.label));
  if (keys.length === 0) {
    const other = blocks.find((block) => block.label.endsWith('PRIVATE KEY'));
    throw new TlsInputError(
      field,
      other
        ? `a "${other.label}" is not supported; give a PKCS#8 ("PRIVATE KEY"), EC ("EC PRIVATE KEY") or RSA ("RSA PRIVATE KEY") key in PEM`
        : 'no PEM private key found (expected "-----BEGIN PRIVATE KEY-----", "EC PRIVATE KEY" or "RSA PRIVATE KEY")',
    );
  }
  if (keys.length > 1) throw new TlsInputError(field, `${keys.length} private keys found where one was expected`);
  const block = keys[0]!;
  if (block.headers.some((header) => /^Proc-Type:\s*4,\s*ENCRYPTED/i.test(header))) throw new TlsInputError(field, ENCRYPTED);
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: block.text, format: 'pem' });
  } catch (error) {
    throw new TlsInputError(field, `the "${block.label}" block is not a valid private key`, { cause: error });
  }
  checkKeyType(key, field);
  return key;
}

function checkKeyType(key: KeyObject, field: string): void {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    if ((details.modulusLength ?? 0) < MIN_RSA_BITS) {
      throw new TlsInputError(field, `the RSA key has ${details.modulusLength} bits; at least ${MIN_RSA_BITS} are required`);
    }
    return;
  }
  if (key.asymmetricKeyType === 'ec') {
    if (!CURVES.has(details.namedCurve ?? '')) {
      throw new TlsInputError(field, `the EC key is on curve ${details.namedCurve ?? '(unnamed)'}; TLS clients take P-256, P-384 or P-521`);
    }
    return;
  }
  throw new TlsInputError(field, `a ${key.asymmetricKeyType ?? 'unknown'} key is not supported; give an RSA or EC key`);
}

export function pkcs8Pem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** True when the certificate certifies this key's public half. */
export function keyMatches(certificate: X509Certificate, key: KeyObject): boolean {
  try {
    return certificate.checkPrivateKey(key);
  } catch {
    return false;
  }
}
