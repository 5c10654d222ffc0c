import { hkdfSync } from 'node:crypto';
import * as argon2 from 'argon2';
import type { KdfParams } from './kdf-params';

export const ARGON2_VERSION = 0x13;

export interface PasswordKeys {
  /** The AES-256-GCM key. */
  key: Buffer;
  /** Kept beside the ciphertext: tells a wrong password from damaged data after one derivation. */
  verifier: Buffer;
}

/**
 * A password turned into keys: Argon2id once (the slow part, parameters stored with the data), then
 * HKDF-SHA256 into independent subkeys, `<purpose>/<keyLabel>` and `<purpose>/verify`.
 * Used by the DEK's backup copy and by backup archives; docs/formats.md and docs/backup-format.md.
 */
export async function derivePasswordKeys(password: string, salt: Buffer, kdf: KdfParams, purpose: string, keyLabel: string, verifierLength: number): Promise<PasswordKeys> {
  const root = await argon2.hash(password, {
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
      key: Buffer.from(hkdfSync('sha256', root, Buffer.alloc(0), `${purpose}/${keyLabel}`, 32)),
      verifier: Buffer.from(hkdfSync('sha256', root, Buffer.alloc(0), `${purpose}/verify`, verifierLength)),
    };
  } finally {
    root.fill(0);
  }
}
