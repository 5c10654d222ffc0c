import { Dek, keyIdBytes, KEY_ID_LENGTH } from './dek-keyring';
import { DEFAULT_KDF, DEFAULT_KDF_CEILING, KdfParams } from './kdf-params';
import { openWithPassword, PasswordRecordKind, passwordRecordLength, readPasswordRecord, sealWithPassword } from './password-record';

export { DEFAULT_KDF, DEFAULT_KDF_CEILING, exceedsKdfCeiling, kdfCeilingMessage, MAX_KDF_CEILING, MINIMUM_KDF } from './kdf-params';
export type { KdfParams } from './kdf-params';
export { checkKdfParams } from './password-record';

/** KWB1 (docs/formats.md §3): one DEK per password, the format written before keysets; still read. */
const KWB1: PasswordRecordKind = { magic: 'KWB1', name: 'the backup copy of the DEK', purpose: 'keyward/dek-backup/v1', labelLength: KEY_ID_LENGTH };

export const BACKUP_COPY_LENGTH = passwordRecordLength(KWB1); // 123

/** The copy of the DEK that the backup password opens: Argon2id → HKDF → AES-256-GCM. */
export async function createBackupCopy(dek: Dek, password: string, params: KdfParams = DEFAULT_KDF, ceiling: KdfParams = DEFAULT_KDF_CEILING): Promise<Buffer> {
  return sealWithPassword(KWB1, dek.key, keyIdBytes(dek.keyId), password, params, ceiling);
}

/** Refuses a copy whose stored parameters are outside floor..ceiling before Argon2id runs. */
export async function openBackupCopy(copy: Buffer, password: string, ceiling: KdfParams = DEFAULT_KDF_CEILING): Promise<Dek> {
  const { secret, label } = await openWithPassword(KWB1, copy, password, ceiling);
  return { keyId: label.toString('hex'), key: secret };
}

/** Parameters and key id of a copy, checked for shape and checksum; needs no password. */
export function readBackupCopyParams(copy: Buffer): KdfParams & { keyId: string } {
  const { label, ...params } = readPasswordRecord(KWB1, copy);
  return { ...params, keyId: label.toString('hex') };
}
