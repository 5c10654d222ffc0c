import { createDecipheriv } from 'node:crypto';
import { KeyCustodyError } from '../errors/key-custody-error';
import { decodeBase64Strict } from './base64';

const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const MAX_PAD = 16;

/**
 * Reads a field value written by Trustpoint (util/encrypted_fields.py): base64 of
 * nonce(12) | tag(16) | GCM(utf8(value) | n zero bytes | byte n), n in 0..15, no associated data.
 * keyward never writes this format; it reads it so that a Trustpoint database can be imported.
 */
export function decryptTrustpointField(stored: string, dek: Buffer): string {
  const raw = decodeBase64Strict(stored);
  if (raw === null || raw.length < NONCE_LENGTH + TAG_LENGTH + 1) {
    throw new KeyCustodyError('FIELD_CORRUPT', 'value is neither a keyward field value nor a Trustpoint one');
  }
  const decipher = createDecipheriv('aes-256-gcm', dek, raw.subarray(0, NONCE_LENGTH));
  decipher.setAuthTag(raw.subarray(NONCE_LENGTH, NONCE_LENGTH + TAG_LENGTH));
  let padded: Buffer;
  try {
    padded = Buffer.concat([decipher.update(raw.subarray(NONCE_LENGTH + TAG_LENGTH)), decipher.final()]);
  } catch (error) {
    throw new KeyCustodyError('FIELD_CORRUPT', 'Trustpoint-format value failed authentication under the DEK', { cause: error });
  }
  const padLength = padded[padded.length - 1]!;
  const data = padLength < MAX_PAD ? padded.subarray(0, padded.length - padLength - 1) : padded;
  return data.toString('utf8');
}
