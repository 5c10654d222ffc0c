import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { KeyCustodyError } from '../errors/key-custody-error';
import { DEK_LENGTH, Dek, KEY_ID_LENGTH } from './dek-keyring';
import { ARGON2_VERSION, derivePasswordKeys } from './password-keys';

import { DEFAULT_KDF, DEFAULT_KDF_CEILING, exceedsKdfCeiling, KdfParams, kdfCeilingMessage, MINIMUM_KDF } from './kdf-params';

export { DEFAULT_KDF, DEFAULT_KDF_CEILING, exceedsKdfCeiling, kdfCeilingMessage, MAX_KDF_CEILING, MINIMUM_KDF } from './kdf-params';
export type { KdfParams } from './kdf-params';

const MAGIC = Buffer.from('KWB1', 'ascii');
const ARGON2ID = 2;
const SALT_LENGTH = 16;
const VERIFIER_LENGTH = 16;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const CHECKSUM_LENGTH = 8;

// Offsets of the layout documented in docs/formats.md.
const AAD_END = 4 + 1 + 1 + 4 + 4 + 1 + SALT_LENGTH + KEY_ID_LENGTH; // 39
const VERIFIER_END = AAD_END + VERIFIER_LENGTH; // 55
const NONCE_END = VERIFIER_END + NONCE_LENGTH; // 67
const CIPHERTEXT_END = NONCE_END + DEK_LENGTH; // 99
const TAG_END = CIPHERTEXT_END + TAG_LENGTH; // 115
export const BACKUP_COPY_LENGTH = TAG_END + CHECKSUM_LENGTH; // 123

export function checkKdfParams(params: KdfParams, ceiling: KdfParams = DEFAULT_KDF_CEILING): void {
  if (params.memoryKiB < MINIMUM_KDF.memoryKiB || params.iterations < MINIMUM_KDF.iterations || params.parallelism < 1 || params.parallelism > 255) {
    throw new KeyCustodyError(
      'WEAK_KDF_PARAMETERS',
      `Argon2id parameters m=${params.memoryKiB} KiB, t=${params.iterations}, p=${params.parallelism} are below the floor of m=${MINIMUM_KDF.memoryKiB} KiB, t=${MINIMUM_KDF.iterations}`,
    );
  }
  if (exceedsKdfCeiling(params, ceiling)) throw new KeyCustodyError('WEAK_KDF_PARAMETERS', kdfCeilingMessage(params, ceiling));
}

/** The copy of the DEK that the backup password opens: Argon2id → HKDF → AES-256-GCM. */
export async function createBackupCopy(dek: Dek, password: string, params: KdfParams = DEFAULT_KDF, ceiling: KdfParams = DEFAULT_KDF_CEILING): Promise<Buffer> {
  checkKdfParams(params, ceiling);
  if (password.length === 0) throw new RangeError('the backup password is empty');
  const header = Buffer.alloc(AAD_END);
  MAGIC.copy(header, 0);
  header[4] = ARGON2ID;
  header[5] = ARGON2_VERSION;
  header.writeUInt32BE(params.memoryKiB, 6);
  header.writeUInt32BE(params.iterations, 10);
  header[14] = params.parallelism;
  randomBytes(SALT_LENGTH).copy(header, 15);
  header.write(dek.keyId, 15 + SALT_LENGTH, KEY_ID_LENGTH, 'hex');
  const keys = await deriveKeys(password, header);
  const nonce = randomBytes(NONCE_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', keys.encryption, nonce);
  cipher.setAAD(header);
  const ciphertext = Buffer.concat([cipher.update(dek.key), cipher.final()]);
  const body = Buffer.concat([header, keys.verifier, nonce, ciphertext, cipher.getAuthTag()]);
  keys.encryption.fill(0);
  return Buffer.concat([body, checksum(body)]);
}

/** Refuses a copy whose stored parameters are outside floor..ceiling before Argon2id runs. */
export async function openBackupCopy(copy: Buffer, password: string, ceiling: KdfParams = DEFAULT_KDF_CEILING): Promise<Dek> {
  const params = readBackupCopyParams(copy);
  checkKdfParams(params, ceiling);
  const header = copy.subarray(0, AAD_END);
  const keys = await deriveKeys(password, header);
  try {
    if (!timingSafeEqual(keys.verifier, copy.subarray(AAD_END, VERIFIER_END))) {
      throw new KeyCustodyError('WRONG_BACKUP_PASSWORD', 'the backup password is wrong');
    }
    const decipher = createDecipheriv('aes-256-gcm', keys.encryption, copy.subarray(VERIFIER_END, NONCE_END));
    decipher.setAAD(header);
    decipher.setAuthTag(copy.subarray(CIPHERTEXT_END, TAG_END));
    try {
      const key = Buffer.concat([decipher.update(copy.subarray(NONCE_END, CIPHERTEXT_END)), decipher.final()]);
      return { keyId: header.toString('hex', 15 + SALT_LENGTH, AAD_END), key };
    } catch (error) {
      throw new KeyCustodyError('BACKUP_COPY_CORRUPT', 'the backup copy of the DEK failed authentication although the password is right', { cause: error });
    }
  } finally {
    keys.encryption.fill(0);
  }
}

/** Parameters and key id of a copy, checked for shape and checksum; needs no password. */
export function readBackupCopyParams(copy: Buffer): KdfParams & { keyId: string } {
  if (copy.length !== BACKUP_COPY_LENGTH) {
    throw new KeyCustodyError('BACKUP_COPY_CORRUPT', `the backup copy of the DEK is ${copy.length} bytes, not ${BACKUP_COPY_LENGTH}`);
  }
  if (!copy.subarray(0, 4).equals(MAGIC)) {
    throw new KeyCustodyError('BACKUP_COPY_CORRUPT', 'the backup copy of the DEK does not start with KWB1');
  }
  if (!checksum(copy.subarray(0, TAG_END)).equals(copy.subarray(TAG_END))) {
    throw new KeyCustodyError('BACKUP_COPY_CORRUPT', 'the backup copy of the DEK fails its checksum: it was altered or damaged');
  }
  if (copy[4] !== ARGON2ID || copy[5] !== ARGON2_VERSION) {
    throw new KeyCustodyError('BACKUP_COPY_CORRUPT', `the backup copy names KDF ${copy[4]} version ${copy[5]}; keyward reads Argon2id version 0x13`);
  }
  return {
    memoryKiB: copy.readUInt32BE(6),
    iterations: copy.readUInt32BE(10),
    parallelism: copy[14]!,
    keyId: copy.toString('hex', 15 + SALT_LENGTH, AAD_END),
  };
}

/** The BEK's two subkeys, from the parameters and salt the header holds. */
async function deriveKeys(password: string, header: Buffer): Promise<{ encryption: Buffer; verifier: Buffer }> {
  const params = { memoryKiB: header.readUInt32BE(6), iterations: header.readUInt32BE(10), parallelism: header[14]! };
  const keys = await derivePasswordKeys(password, header.subarray(15, 15 + SALT_LENGTH), params, 'keyward/dek-backup/v1', 'encrypt', VERIFIER_LENGTH);
  return { encryption: keys.key, verifier: keys.verifier };
}

function checksum(body: Buffer): Buffer {
  return createHash('sha256').update(body).digest().subarray(0, CHECKSUM_LENGTH);
}
