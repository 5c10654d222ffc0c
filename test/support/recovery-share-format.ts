import { createHash, createPrivateKey, createPublicKey, hkdfSync } from 'node:crypto';
import { combine } from 'shamir-secret-sharing';
import { openDekCopyPerDocs } from './backup-key-format';

/**
 * docs/formats.md §6 implemented again from the document: the share text decoded by hand, combined
 * with the same audited library keyward uses (§6.4), the X25519 key derived per §6.2, the recovery
 * copies opened with the KWD1 reader of ./backup-key-format (§5.2). It imports nothing of keyward.
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const sha256 = (...parts: Buffer[]) => parts.reduce((hash, part) => hash.update(part), createHash('sha256')).digest();

/** §6.5: a typed share's fields. */
export function readSharePerDocs(typed: string): { setId: Buffer; index: number; threshold: number; shamir: Buffer } {
  const text = typed.replace(/[\s-]/g, '').toUpperCase();
  if (text.length !== 80 || [...text].some((c) => !ALPHABET.includes(c))) throw new Error('not 80 base32 characters');
  // Five bits per character, most significant first: 80 characters are exactly 50 bytes.
  const bits = [...text].map((c) => ALPHABET.indexOf(c).toString(2).padStart(5, '0')).join('');
  const bytes = Buffer.from(Array.from({ length: 50 }, (_, i) => parseInt(bits.slice(i * 8, i * 8 + 8), 2)));
  if (!sha256(bytes.subarray(0, 44)).subarray(0, 6).equals(bytes.subarray(44, 50))) throw new Error('checksum');
  if (bytes[0] !== 1) throw new Error(`version ${bytes[0]}`);
  return { setId: bytes.subarray(1, 9), index: bytes[9]!, threshold: bytes[10]!, shamir: bytes.subarray(11, 44) };
}

/** §6.1: one share checked against the stored commitments. */
export function shareMatchesPerDocs(typed: string, set: { shareSetId: string; commitments: Buffer }): boolean {
  const share = readSharePerDocs(typed);
  const commitment = sha256(Buffer.from('keyward/recovery-share/v1'), share.setId, Buffer.from([share.index]), share.shamir);
  return share.setId.toString('hex') === set.shareSetId && commitment.equals(set.commitments.subarray((share.index - 1) * 32, share.index * 32));
}

/** §6.6: every live DEK from K typed shares, the stored public key and the rows' recovery copies. */
export async function recoverDeksWithSharesPerDocs(typed: string[], set: { shareSetId: string; publicKey: Buffer }, rows: { dekKeyId: string; recoveryCopy: Buffer }[]): Promise<Map<string, Buffer>> {
  const shares = typed.map(readSharePerDocs);
  if (shares.some((share) => share.setId.toString('hex') !== set.shareSetId)) throw new Error('a share of another set');
  const recoveryKey = Buffer.from(await combine(shares.map((share) => new Uint8Array(share.shamir))));
  const privateKey = Buffer.from(hkdfSync('sha256', recoveryKey, shares[0]!.setId, 'keyward/recovery-key/v1', 32));
  // §6.2: the public key of d (RFC 8410 DER around the raw key) must be the stored one.
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), privateKey]);
  const publicKey = createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }))
    .export({ format: 'der', type: 'spki' })
    .subarray(12);
  if (!publicKey.equals(set.publicKey)) throw new Error('the shares do not combine to the set’s recovery key');
  const deks = new Map<string, Buffer>();
  for (const row of rows) {
    const opened = openDekCopyPerDocs(row.recoveryCopy, { privateKey, publicKey: set.publicKey });
    if (opened.keyId !== row.dekKeyId) throw new Error(`row ${row.dekKeyId} holds the copy of ${opened.keyId}`);
    deks.set(opened.keyId, opened.dek);
  }
  recoveryKey.fill(0);
  privateKey.fill(0);
  return deks;
}
