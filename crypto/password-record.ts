import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { KeyCustodyError } from '../errors/key-custody-error';
import { DEFAULT_KDF_CEILING, exceedsKdfCeiling, KdfParams, kdfCeilingMessage, MINIMUM_KDF } from './kdf-params';
import { ARGON2_VERSION, derivePasswordKeys } from './password-keys';

/**
 * What KWB1 and KWK1 share (docs/formats.md §3 and §5): a header of KDF parameters, salt and a label
 * (the AAD), a password verifier, one 32-byte secret under AES-256-GCM, and a checksum. A kind names
 * the parts that differ; the layout and every check are the same for both.
 */
export interface PasswordRecordKind {
  magic: string;
  /** What the record is, for messages: "the backup copy of the DEK". */
  name: string;
  /** HKDF info prefix: the keys are `<purpose>/encrypt` and `<purpose>/verify`. */
  purpose: string;
  /** Length of the label that ends the header: KWB1's DEK key id, KWK1's public key. */
  labelLength: number;
}

export interface OpenedRecord {
  secret: Buffer;
  label: Buffer;
}

const ARGON2ID = 2;
const SALT_LENGTH = 16;
const VERIFIER_LENGTH = 16;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const SECRET_LENGTH = 32;
const CHECKSUM_LENGTH = 8;
const SALT_START = 15;
const LABEL_START = SALT_START + SALT_LENGTH; // 31

function layout(kind: PasswordRecordKind) {
  const aadEnd = LABEL_START + kind.labelLength;
  const verifierEnd = aadEnd + VERIFIER_LENGTH;
  const nonceEnd = verifierEnd + NONCE_LENGTH;
  const ciphertextEnd = nonceEnd + SECRET_LENGTH;
  const tagEnd = ciphertextEnd + TAG_LENGTH;
  return { aadEnd, verifierEnd, nonceEnd, ciphertextEnd, tagEnd, length: tagEnd + CHECKSUM_LENGTH };
}

export function passwordRecordLength(kind: PasswordRecordKind): number {
  return layout(kind).length;
}

export function checkKdfParams(params: KdfParams, ceiling: KdfParams = DEFAULT_KDF_CEILING): void {
  if (params.memoryKiB < MINIMUM_KDF.memoryKiB || params.iterations < MINIMUM_KDF.iterations || params.parallelism < 1 || params.parallelism > 255) {
    throw new KeyCustodyError(
      'WEAK_KDF_PARAMETERS',
      `Argon2id parameters m=${params.memoryKiB} KiB, t=${params.iterations}, p=${params.parallelism} are below the floor of m=${MINIMUM_KDF.memoryKiB} KiB, t=${MINIMUM_KDF.iterations}`,
    );
  }
  if (exceedsKdfCeiling(params, ceiling)) throw new KeyCustodyError('WEAK_KDF_PARAMETERS', kdfCeilingMessage(params, ceiling));
}

/** The checksum of KWB1, KWK1 and KWD1: first 8 bytes of SHA-256; it tells damage, the GCM tag authenticates. */
export function checksum(body: Buffer): Buffer {
  return createHash('sha256').update(body).digest().subarray(0, CHECKSUM_LENGTH);
}

/** body || checksum(body) */
export function withChecksum(body: Buffer): Buffer {
  return Buffer.concat([body, checksum(body)]);
}

/** Length, magic and checksum of a record that ends in a checksum; `name` says what it is in messages. */
export function checkRecordShape(record: Buffer, magic: string, length: number, name: string): void {
  if (record.length !== length) throw new KeyCustodyError('BACKUP_COPY_CORRUPT', `${name} is ${record.length} bytes, not ${length}`);
  if (record.toString('latin1', 0, 4) !== magic) throw new KeyCustodyError('BACKUP_COPY_CORRUPT', `${name} does not start with ${magic}`);
  if (!checksum(record.subarray(0, length - CHECKSUM_LENGTH)).equals(record.subarray(length - CHECKSUM_LENGTH))) {
    throw new KeyCustodyError('BACKUP_COPY_CORRUPT', `${name} fails its checksum: it was altered or damaged`);
  }
}

/** Encrypts a 32-byte secret under the password: Argon2id → HKDF → AES-256-GCM, the header as AAD. */
export async function sealWithPassword(kind: PasswordRecordKind, secret: Buffer, label: Buffer, password: string, params: KdfParams, ceiling: KdfParams): Promise<Buffer> {
  checkKdfParams(params, ceiling);
  if (password.length === 0) throw new RangeError('the backup password is empty');
  if (secret.length !== SECRET_LENGTH || label.length !== kind.labelLength) throw new RangeError(`${kind.magic} holds a ${SECRET_LENGTH}-byte secret and a ${kind.labelLength}-byte label`);
  const header = Buffer.alloc(layout(kind).aadEnd);
  header.write(kind.magic, 0, 4, 'latin1');
  header[4] = ARGON2ID;
  header[5] = ARGON2_VERSION;
  header.writeUInt32BE(params.memoryKiB, 6);
  header.writeUInt32BE(params.iterations, 10);
  header[14] = params.parallelism;
  randomBytes(SALT_LENGTH).copy(header, SALT_START);
  label.copy(header, LABEL_START);
  const keys = await deriveKeys(kind, password, header);
  try {
    const nonce = randomBytes(NONCE_LENGTH);
    const cipher = createCipheriv('aes-256-gcm', keys.key, nonce);
    cipher.setAAD(header);
    const ciphertext = Buffer.concat([cipher.update(secret), cipher.final()]);
    return withChecksum(Buffer.concat([header, keys.verifier, nonce, ciphertext, cipher.getAuthTag()]));
  } finally {
    keys.key.fill(0);
  }
}

/** Refuses a record whose stored parameters are outside floor..ceiling before Argon2id runs. */
export async function openWithPassword(kind: PasswordRecordKind, record: Buffer, password: string, ceiling: KdfParams): Promise<OpenedRecord> {
  const { label, ...params } = readPasswordRecord(kind, record);
  checkKdfParams(params, ceiling);
  const at = layout(kind);
  const header = record.subarray(0, at.aadEnd);
  const keys = await deriveKeys(kind, password, header);
  try {
    if (!timingSafeEqual(keys.verifier, record.subarray(at.aadEnd, at.verifierEnd))) {
      throw new KeyCustodyError('WRONG_BACKUP_PASSWORD', 'the backup password is wrong');
    }
    const decipher = createDecipheriv('aes-256-gcm', keys.key, record.subarray(at.verifierEnd, at.nonceEnd));
    decipher.setAAD(header);
    decipher.setAuthTag(record.subarray(at.ciphertextEnd, at.tagEnd));
    try {
      const secret = Buffer.concat([decipher.update(record.subarray(at.nonceEnd, at.ciphertextEnd)), decipher.final()]);
      return { secret, label };
    } catch (error) {
      throw new KeyCustodyError('BACKUP_COPY_CORRUPT', `${kind.name} failed authentication although the password is right`, { cause: error });
    }
  } finally {
    keys.key.fill(0);
  }
}

/** Parameters and label of a record, checked for shape and checksum; needs no password. */
export function readPasswordRecord(kind: PasswordRecordKind, record: Buffer): KdfParams & { label: Buffer } {
  const at = layout(kind);
  checkRecordShape(record, kind.magic, at.length, kind.name);
  if (record[4] !== ARGON2ID || record[5] !== ARGON2_VERSION) {
    throw new KeyCustodyError('BACKUP_COPY_CORRUPT', `${kind.name} names KDF ${record[4]} version ${record[5]}; keyward reads Argon2id version 0x13`);
  }
  return {
    memoryKiB: record.readUInt32BE(6),
    iterations: record.readUInt32BE(10),
    parallelism: record[14]!,
    label: Buffer.from(record.subarray(LABEL_START, at.aadEnd)),
  };
}

async function deriveKeys(kind: PasswordRecordKind, password: string, header: Buffer) {
  const params = { memoryKiB: header.readUInt32BE(6), iterations: header.readUInt32BE(10), parallelism: header[14]! };
  return derivePasswordKeys(password, header.subarray(SALT_START, LABEL_START), params, kind.purpose, 'encrypt', VERIFIER_LENGTH);
}
