import { hkdfSync } from 'node:crypto';
import * as argon2 from 'argon2';
import type { KdfParams } from '../../hsm/backup-copy';
import { ARGON2_VERSION, VERIFIER_LENGTH } from './archive-format';

export interface ArchiveKeys {
  /** AES-256-GCM key of every payload segment. */
  payload: Buffer;
  /** Stored in the header: tells a wrong passphrase from a damaged file after one derivation. */
  verifier: Buffer;
}

/** Argon2id once per archive, then HKDF-SHA256 into independent subkeys. */
export async function deriveArchiveKeys(passphrase: string, salt: Buffer, kdf: KdfParams): Promise<ArchiveKeys> {
  const root = await argon2.hash(passphrase, {
    type: argon2.argon2id, // the numeric constant: the string 'argon2id' silently selects Argon2d
    version: ARGON2_VERSION,
    memoryCost: kdf.memoryKiB,
    timeCost: kdf.iterations,
    parallelism: kdf.parallelism,
    salt,
    hashLength: 32,
    raw: true,
  });
  try {
    return {
      payload: Buffer.from(hkdfSync('sha256', root, Buffer.alloc(0), 'keyward/backup-archive/v1/payload', 32)),
      verifier: Buffer.from(hkdfSync('sha256', root, Buffer.alloc(0), 'keyward/backup-archive/v1/verify', VERIFIER_LENGTH)),
    };
  } finally {
    root.fill(0);
  }
}

export function checkPassphrase(passphrase: unknown): asserts passphrase is string {
  if (typeof passphrase !== 'string' || passphrase.length === 0) throw new RangeError('the backup passphrase is empty');
}
