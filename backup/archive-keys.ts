import type { KdfParams } from '../crypto/backup-copy';
import { derivePasswordKeys } from '../crypto/password-keys';
import { VERIFIER_LENGTH } from './archive-format';

export interface ArchiveKeys {
  /** AES-256-GCM key of every payload segment. */
  payload: Buffer;
  /** Stored in the header: tells a wrong passphrase from a damaged file after one derivation. */
  verifier: Buffer;
}

/** Argon2id once per archive, then HKDF-SHA256 into independent subkeys. */
export async function deriveArchiveKeys(passphrase: string, salt: Buffer, kdf: KdfParams): Promise<ArchiveKeys> {
  const keys = await derivePasswordKeys(passphrase, salt, kdf, 'keyward/backup-archive/v1', 'payload', VERIFIER_LENGTH);
  return { payload: keys.key, verifier: keys.verifier };
}

export function checkPassphrase(passphrase: unknown): asserts passphrase is string {
  if (typeof passphrase !== 'string' || passphrase.length === 0) throw new RangeError('the backup passphrase is empty');
}
