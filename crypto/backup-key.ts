import { createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, KeyObject, randomBytes } from 'node:crypto';
import { KeyCustodyError } from '../errors/key-custody-error';
import { DEK_LENGTH, Dek, keyIdBytes, KEY_ID_LENGTH } from './dek-keyring';
import { DEFAULT_KDF, DEFAULT_KDF_CEILING, KdfParams } from './kdf-params';
import { checkRecordShape, openWithPassword, PasswordRecordKind, passwordRecordLength, readPasswordRecord, sealWithPassword, withChecksum } from './password-record';

/**
 * The backup key (docs/formats.md §5): an X25519 key pair whose private key only the backup password
 * opens (KWK1), so that a DEK copy (KWD1) can be sealed to its public key without the password, by a
 * rotation that runs unattended, and every live DEK still has a copy the password recovers.
 */

const X25519_LENGTH = 32;
const FINGERPRINT_LENGTH = 8;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const CHECKSUM_LENGTH = 8;

const KWK1: PasswordRecordKind = { magic: 'KWK1', name: 'the backup key record', purpose: 'keyward/backup-key/v1', labelLength: X25519_LENGTH };
export const BACKUP_KEY_RECORD_LENGTH = passwordRecordLength(KWK1); // 147

const KWD1 = 'KWD1';
const DEK_COPY_NAME = 'the sealed copy of the DEK';
const COPY_INFO = 'keyward/dek-copy/v1';
// Offsets of KWD1, docs/formats.md §5.2.
const RECIPIENT_START = 4 + KEY_ID_LENGTH; // 12
const EPHEMERAL_START = RECIPIENT_START + FINGERPRINT_LENGTH; // 20
const COPY_AAD_END = EPHEMERAL_START + X25519_LENGTH; // 52
const COPY_NONCE_END = COPY_AAD_END + NONCE_LENGTH; // 64
const COPY_CIPHERTEXT_END = COPY_NONCE_END + DEK_LENGTH; // 96
const COPY_TAG_END = COPY_CIPHERTEXT_END + TAG_LENGTH; // 112
export const DEK_COPY_LENGTH = COPY_TAG_END + CHECKSUM_LENGTH; // 120

// X25519 keys in DER are the raw 32 bytes behind these fixed prefixes (RFC 8410): Node 20 imports and exports
// them as DER or JWK only, and DER keeps the private key in a Buffer that can be overwritten, not a string.
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

export type BackupCopyFormat = 'KWB1' | 'KWD1' | 'KWK1';

/**
 * The opened backup key. The raw private key lives in one Buffer until wipe(); each use builds a
 * short-lived KeyObject, which OpenSSL cleanses when it is freed.
 */
export class BackupPrivateKey {
  readonly publicKey: Buffer;
  /** Hex of the first 8 bytes of SHA-256(public key): names the key in messages and in KWD1. */
  readonly fingerprint: string;
  private raw: Buffer | null;

  /** Takes ownership of `raw` (32 bytes): wipe() overwrites it. */
  constructor(raw: Buffer) {
    if (raw.length !== X25519_LENGTH) throw new RangeError(`an X25519 private key is ${X25519_LENGTH} bytes`);
    this.raw = raw;
    this.publicKey = rawPublicKey(createPublicKey(this.keyObject()));
    this.fingerprint = fingerprintOf(this.publicKey).toString('hex');
  }

  /** X25519 with the ephemeral public key of a KWD1 copy. */
  agree(ephemeralPublicKey: Buffer): Buffer {
    const privateKey = this.keyObject();
    try {
      return diffieHellman({ privateKey, publicKey: publicKeyObject(ephemeralPublicKey) });
    } catch (error) {
      // OpenSSL refuses a low-order point, whose shared secret is all zeros: only a forged copy has one.
      throw new KeyCustodyError('BACKUP_COPY_CORRUPT', `${DEK_COPY_NAME} has an ephemeral public key of low order`, { cause: error });
    }
  }

  wipe(): void {
    this.raw?.fill(0);
    this.raw = null;
  }

  private keyObject(): KeyObject {
    if (this.raw === null) throw new Error('the backup key has been wiped');
    const der = Buffer.concat([PKCS8_PREFIX, this.raw]);
    try {
      return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } finally {
      der.fill(0);
    }
  }
}

/** A new backup key: its KWK1 record (to store) and its public key (to seal DEK copies to). */
export async function createBackupKey(password: string, params: KdfParams = DEFAULT_KDF, ceiling: KdfParams = DEFAULT_KDF_CEILING): Promise<{ record: Buffer; publicKey: Buffer }> {
  const pair = generateKeyPairSync('x25519');
  const publicKey = rawPublicKey(pair.publicKey);
  const der = pair.privateKey.export({ format: 'der', type: 'pkcs8' });
  try {
    if (der.length !== PKCS8_PREFIX.length + X25519_LENGTH || !der.subarray(0, PKCS8_PREFIX.length).equals(PKCS8_PREFIX)) {
      throw new Error('Node exported an X25519 private key in an unexpected PKCS#8 form');
    }
    const record = await sealWithPassword(KWK1, der.subarray(PKCS8_PREFIX.length), publicKey, password, params, ceiling);
    return { record, publicKey };
  } finally {
    der.fill(0);
  }
}

/**
 * Opens a KWK1 record. Shape, checksum and KDF parameters (floor..ceiling) are checked before
 * Argon2id runs; then the verifier (WRONG_BACKUP_PASSWORD), the tag, and that the private key is the
 * one of the header's public key (BACKUP_COPY_CORRUPT otherwise). The caller wipes the key after use.
 */
export async function openBackupKey(record: Buffer, password: string, ceiling: KdfParams = DEFAULT_KDF_CEILING): Promise<BackupPrivateKey> {
  const { secret, label } = await openWithPassword(KWK1, record, password, ceiling);
  const key = new BackupPrivateKey(secret);
  if (!key.publicKey.equals(label)) {
    key.wipe();
    throw new KeyCustodyError(
      'BACKUP_COPY_CORRUPT',
      `the backup key record's private key (backup key ${key.fingerprint}) does not belong to its public key (backup key ${fingerprintOf(label).toString('hex')})`,
    );
  }
  return key;
}

/** Parameters and public key of a KWK1 record, checked for shape and checksum; needs no password. */
export function readBackupKeyRecord(record: Buffer): { params: KdfParams; publicKey: Buffer; fingerprint: string } {
  const { label, ...params } = readPasswordRecord(KWK1, record);
  return { params, publicKey: label, fingerprint: fingerprintOf(label).toString('hex') };
}

/** A KWD1 copy of the DEK sealed to the backup key's public key: no password, a fresh ephemeral key. */
export function sealDekCopy(dek: Dek, publicKey: Buffer): Buffer {
  if (dek.key.length !== DEK_LENGTH) throw new RangeError(`a DEK is ${DEK_LENGTH} bytes`);
  const ephemeral = generateKeyPairSync('x25519');
  const ephemeralPublic = rawPublicKey(ephemeral.publicKey);
  const header = Buffer.concat([Buffer.from(KWD1, 'latin1'), keyIdBytes(dek.keyId), fingerprintOf(publicKey), ephemeralPublic]);
  const key = copyKey(diffieHellman({ privateKey: ephemeral.privateKey, publicKey: publicKeyObject(publicKey) }), ephemeralPublic, publicKey);
  try {
    const nonce = randomBytes(NONCE_LENGTH);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(header);
    const ciphertext = Buffer.concat([cipher.update(dek.key), cipher.final()]);
    return withChecksum(Buffer.concat([header, nonce, ciphertext, cipher.getAuthTag()]));
  } finally {
    key.fill(0);
  }
}

/** Key id and recipient fingerprint of a KWD1 copy, checked for shape and checksum; needs no key. */
export function readDekCopy(copy: Buffer): { keyId: string; recipient: string } {
  checkRecordShape(copy, KWD1, DEK_COPY_LENGTH, DEK_COPY_NAME);
  return { keyId: copy.toString('hex', 4, RECIPIENT_START), recipient: copy.toString('hex', RECIPIENT_START, EPHEMERAL_START) };
}

/** Opens a KWD1 copy: damage → BACKUP_COPY_CORRUPT; sealed to another backup key → BACKUP_KEY_MISMATCH. */
export function openDekCopy(copy: Buffer, backupKey: BackupPrivateKey): Dek {
  const { keyId, recipient } = readDekCopy(copy);
  if (recipient !== backupKey.fingerprint) {
    throw new KeyCustodyError('BACKUP_KEY_MISMATCH', `the backup copy of DEK ${keyId} is sealed to backup key ${recipient}, not to backup key ${backupKey.fingerprint} that this password opens`);
  }
  const header = copy.subarray(0, COPY_AAD_END);
  const ephemeralPublic = copy.subarray(EPHEMERAL_START, COPY_AAD_END);
  const key = copyKey(backupKey.agree(ephemeralPublic), ephemeralPublic, backupKey.publicKey);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, copy.subarray(COPY_AAD_END, COPY_NONCE_END));
    decipher.setAAD(header);
    decipher.setAuthTag(copy.subarray(COPY_CIPHERTEXT_END, COPY_TAG_END));
    return { keyId, key: Buffer.concat([decipher.update(copy.subarray(COPY_NONCE_END, COPY_CIPHERTEXT_END)), decipher.final()]) };
  } catch (error) {
    throw new KeyCustodyError('BACKUP_COPY_CORRUPT', `${DEK_COPY_NAME} ${keyId} failed authentication although it names this backup key`, { cause: error });
  } finally {
    key.fill(0);
  }
}

/** Which of the password-recoverable formats a stored value is, by its magic alone (the readers check the rest). */
export function backupCopyFormat(value: Buffer): BackupCopyFormat | null {
  const magic = value.length >= 4 ? value.toString('latin1', 0, 4) : '';
  return magic === 'KWB1' || magic === 'KWD1' || magic === 'KWK1' ? magic : null;
}

/** First 8 bytes of SHA-256 of a raw X25519 public key. */
export function backupKeyFingerprint(publicKey: Buffer): string {
  return fingerprintOf(publicKey).toString('hex');
}

function fingerprintOf(publicKey: Buffer): Buffer {
  return createHash('sha256').update(publicKey).digest().subarray(0, FINGERPRINT_LENGTH);
}

/** HKDF-SHA256(X25519 secret, salt = ephemeral public || recipient public, info = keyward/dek-copy/v1); wipes the secret. */
function copyKey(shared: Buffer, ephemeralPublic: Buffer, recipientPublic: Buffer): Buffer {
  try {
    return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeralPublic, recipientPublic]), COPY_INFO, 32));
  } finally {
    shared.fill(0);
  }
}

function publicKeyObject(raw: Buffer): KeyObject {
  if (raw.length !== X25519_LENGTH) throw new RangeError(`an X25519 public key is ${X25519_LENGTH} bytes`);
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

function rawPublicKey(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' });
  if (der.length !== SPKI_PREFIX.length + X25519_LENGTH || !der.subarray(0, SPKI_PREFIX.length).equals(SPKI_PREFIX)) {
    throw new Error('Node exported an X25519 public key in an unexpected SPKI form');
  }
  return Buffer.from(der.subarray(SPKI_PREFIX.length));
}
