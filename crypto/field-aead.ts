import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { KeyCustodyError } from '../errors/key-custody-error';
import { DekKeyring, KEY_ID_LENGTH } from './dek-keyring';

export const FIELD_FORMAT_VERSION = 1;
const HEADER_LENGTH = 1 + KEY_ID_LENGTH;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const LENGTH_PREFIX = 4;
const MAX_PAD = 15;

/**
 * AES-256-GCM under the current DEK, in the manner of Tink's AEAD: encrypt(plaintext, associatedData),
 * the key id in every ciphertext. Byte layout (docs/formats.md):
 *   version(1) | keyId(8) | nonce(12) | GCM( u32be(len) | plaintext | 0..15 zero bytes ) | tag(16)
 * with associated data = version | keyId | associatedData. Random padding hides exact lengths.
 */
export class FieldAead {
  /** Nonce and padding randomness drawn in blocks: one getrandom call per 256 values, not per value. */
  private readonly pool = Buffer.alloc(13 * 256);
  private poolOffset = this.pool.length;
  private readonly aadCache = new WeakMap<Buffer, WeakMap<Buffer, Buffer>>();

  constructor(private readonly keyring: DekKeyring) {}

  encrypt(plaintext: Buffer, associatedData: Buffer): Buffer {
    const { keyId, key } = this.keyring.takeForEncryption();
    const random = this.takeRandom();
    const padLength = random[NONCE_LENGTH]! % (MAX_PAD + 1);
    const bodyLength = LENGTH_PREFIX + plaintext.length + padLength;
    const out = Buffer.allocUnsafe(HEADER_LENGTH + NONCE_LENGTH + bodyLength + TAG_LENGTH);
    out[0] = FIELD_FORMAT_VERSION;
    out.write(keyId, 1, KEY_ID_LENGTH, 'hex');
    random.copy(out, HEADER_LENGTH, 0, NONCE_LENGTH);
    const body = Buffer.alloc(bodyLength);
    body.writeUInt32BE(plaintext.length, 0);
    plaintext.copy(body, LENGTH_PREFIX);
    const cipher = createCipheriv('aes-256-gcm', key, out.subarray(HEADER_LENGTH, HEADER_LENGTH + NONCE_LENGTH));
    cipher.setAAD(this.aad(out, associatedData, key));
    const offset = HEADER_LENGTH + NONCE_LENGTH;
    const written = cipher.update(body).copy(out, offset);
    cipher.final();
    cipher.getAuthTag().copy(out, offset + written);
    body.fill(0);
    return out;
  }

  decrypt(ciphertext: Buffer, associatedData: Buffer): Buffer {
    const body = this.open(ciphertext, associatedData);
    return body.subarray(LENGTH_PREFIX, LENGTH_PREFIX + body.readUInt32BE(0));
  }

  /** The plaintext as UTF-8 text, read straight from the decrypted body (no intermediate view). */
  decryptUtf8(ciphertext: Buffer, associatedData: Buffer): string {
    const body = this.open(ciphertext, associatedData);
    return body.toString('utf8', LENGTH_PREFIX, LENGTH_PREFIX + body.readUInt32BE(0));
  }

  /** Authenticates and decrypts; returns the body, its length prefix checked. */
  private open(ciphertext: Buffer, associatedData: Buffer): Buffer {
    if (ciphertext.length < HEADER_LENGTH + NONCE_LENGTH + LENGTH_PREFIX + TAG_LENGTH) {
      throw new KeyCustodyError('FIELD_CORRUPT', 'encrypted value is too short to be a keyward field value');
    }
    if (ciphertext[0] !== FIELD_FORMAT_VERSION) {
      throw new KeyCustodyError('FIELD_FORMAT_UNKNOWN', `encrypted value has format version ${ciphertext[0]}; this keyward reads version ${FIELD_FORMAT_VERSION}`);
    }
    // Nearly every value is under the current DEK: compare its id as bytes before any string work.
    const current = this.keyring.currentDek;
    const key = current !== null && sameKeyId(ciphertext, current.keyIdBytes) ? current.key : this.keyring.key(ciphertext.toString('hex', 1, HEADER_LENGTH));
    const nonce = ciphertext.subarray(HEADER_LENGTH, HEADER_LENGTH + NONCE_LENGTH);
    const tagStart = ciphertext.length - TAG_LENGTH;
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAAD(this.aad(ciphertext, associatedData, key));
    decipher.setAuthTag(ciphertext.subarray(tagStart));
    let body: Buffer;
    try {
      body = decipher.update(ciphertext.subarray(HEADER_LENGTH + NONCE_LENGTH, tagStart));
      decipher.final(); // GCM yields nothing more here; this is where the tag is checked
    } catch (error) {
      throw new KeyCustodyError('FIELD_CORRUPT', 'encrypted value failed authentication: it was altered, or belongs to another column', { cause: error });
    }
    if (body.readUInt32BE(0) > body.length - LENGTH_PREFIX) {
      throw new KeyCustodyError('FIELD_CORRUPT', 'encrypted value has an impossible length prefix');
    }
    return body;
  }

  /**
   * version | keyId | associatedData. Under one key the header is constant, so the whole value is
   * kept per (key, associated data) — a column name, reused for every row.
   */
  private aad(value: Buffer, associatedData: Buffer, key: Buffer): Buffer {
    let byData = this.aadCache.get(key);
    if (!byData) this.aadCache.set(key, (byData = new WeakMap()));
    let out = byData.get(associatedData);
    if (!out) {
      out = Buffer.alloc(HEADER_LENGTH + associatedData.length);
      value.copy(out, 0, 0, HEADER_LENGTH);
      associatedData.copy(out, HEADER_LENGTH);
      byData.set(associatedData, out);
    }
    return out;
  }

  private takeRandom(): Buffer {
    if (this.poolOffset >= this.pool.length) {
      randomFillSync(this.pool);
      this.poolOffset = 0;
    }
    const slice = this.pool.subarray(this.poolOffset, this.poolOffset + 13);
    this.poolOffset += 13;
    return slice;
  }
}

/** Eight bytes compared in JavaScript: cheaper than a native call for so few. Key ids are not secret. */
function sameKeyId(value: Buffer, keyId: Buffer): boolean {
  for (let i = 0; i < KEY_ID_LENGTH; i++) if (value[1 + i] !== keyId[i]) return false;
  return true;
}
