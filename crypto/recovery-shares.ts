import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import { combine, split } from 'shamir-secret-sharing';
import { KeyCustodyError } from '../errors/key-custody-error';
import { BackupPrivateKey } from './backup-key';

/**
 * Recovery shares (docs/formats.md §6): a random 32-byte recovery key, split with Shamir's scheme by
 * an independently audited library (shamir-secret-sharing) into N shares, K needed. The key itself
 * is never stored: it derives an X25519 key pair whose public key receives a KWD1 copy of every live
 * DEK, so a rotation adds a copy without the shares, exactly as it does for the backup key.
 */

export const RECOVERY_KEY_LENGTH = 32;
export const SHARE_SET_ID_LENGTH = 8;
/** What shamir-secret-sharing returns per share: the 32 y bytes, then the x coordinate. */
const SHAMIR_SHARE_LENGTH = RECOVERY_KEY_LENGTH + 1;
const SHARE_VERSION = 1;
const SHARE_CHECKSUM_LENGTH = 6;
// Offsets of a share's bytes before base32 (docs/formats.md §6.2).
const SET_ID_END = 1 + SHARE_SET_ID_LENGTH; // 9
const INDEX_AT = SET_ID_END; // 9
const THRESHOLD_AT = INDEX_AT + 1; // 10
const SHAMIR_START = THRESHOLD_AT + 1; // 11
const SHAMIR_END = SHAMIR_START + SHAMIR_SHARE_LENGTH; // 44
export const SHARE_BYTES = SHAMIR_END + SHARE_CHECKSUM_LENGTH; // 50
/** 50 bytes are 80 base32 characters: 16 groups of 5. */
export const SHARE_CHARACTERS = (SHARE_BYTES * 8) / 5;
const GROUP = 5;
export const COMMITMENT_LENGTH = 32;

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const RECOVERY_KEY_INFO = 'keyward/recovery-key/v1';
const COMMITMENT_PREFIX = 'keyward/recovery-share/v1';

export const MIN_SHARES = 2;
export const MAX_SHARES = 16;

/** One share as the operator types it in, decoded and checked for typos (not yet against a set). */
export interface RecoveryShare {
  /** Hex of the 8-byte share-set id. */
  shareSetId: string;
  /** 1..N, the number printed beside the share. */
  index: number;
  threshold: number;
  /** The library's share: 32 bytes and the x coordinate. The holder wipes it after use. */
  shamir: Buffer;
}

/** What the database keeps of a share set: nothing that recovers the key. */
export interface RecoveryShareSetRecord {
  shareSetId: string;
  shares: number;
  threshold: number;
  /** The X25519 public key the recovery copies (KWD1) are sealed to. */
  publicKey: Buffer;
  /** SHA-256 commitment of each share, in index order: checks one share without the others. */
  commitments: Buffer;
  createdAt: string;
}

/** A new set: its record (to store), the shares (to show once) and the private key (to seal with, then wipe). */
export interface NewShareSet {
  record: Omit<RecoveryShareSetRecord, 'createdAt'>;
  shares: string[];
}

/** Checks N and K before anything is made: the messages name the numbers, never a share. */
export function checkShareCounts(shares: number, threshold: number): void {
  if (!Number.isSafeInteger(shares) || shares < MIN_SHARES || shares > MAX_SHARES) {
    throw new KeyCustodyError('RECOVERY_SHARE_INVALID', `the number of shares must be a whole number from ${MIN_SHARES} to ${MAX_SHARES}`);
  }
  if (!Number.isSafeInteger(threshold) || threshold < 2 || threshold > shares) {
    throw new KeyCustodyError('RECOVERY_SHARE_INVALID', `the threshold must be a whole number from 2 to the number of shares (${shares})`);
  }
}

/** A fresh recovery key split into `shares` shares, `threshold` needed; the key is wiped before returning. */
export async function createShareSet(shares: number, threshold: number): Promise<NewShareSet> {
  checkShareCounts(shares, threshold);
  const recoveryKey = randomBytes(RECOVERY_KEY_LENGTH);
  const setId = randomBytes(SHARE_SET_ID_LENGTH);
  const parts: Uint8Array[] = [];
  // The library checks `instanceof Uint8Array`, which a Buffer from another realm (a test's VM context) fails.
  const input = new Uint8Array(recoveryKey);
  try {
    parts.push(...(await split(input, shares, threshold)));
    // The audited library's own round trip, once, before anything is shown: K shares give the key back.
    const back = Buffer.from(await combine(parts.slice(0, threshold)));
    const same = back.equals(recoveryKey);
    back.fill(0);
    if (!same) throw new Error('the recovery shares did not combine back to the recovery key: nothing was stored');
    const key = recoveryPrivateKey(recoveryKey, setId);
    const publicKey = key.publicKey;
    key.wipe();
    const encoded = parts.map((part, i) => encodeShare(setId, i + 1, threshold, Buffer.from(part)));
    const commitments = Buffer.concat(parts.map((part, i) => shareCommitment(setId, i + 1, Buffer.from(part))));
    return { record: { shareSetId: setId.toString('hex'), shares, threshold, publicKey, commitments }, shares: encoded };
  } finally {
    recoveryKey.fill(0);
    input.fill(0);
    for (const part of parts) part.fill(0);
  }
}

/**
 * The X25519 private key of a recovery key: HKDF-SHA256(recovery key, salt = share-set id, info =
 * keyward/recovery-key/v1), 32 bytes. It opens KWD1 copies like the backup key does.
 */
export function recoveryPrivateKey(recoveryKey: Buffer, setId: Buffer): BackupPrivateKey {
  return new BackupPrivateKey(Buffer.from(hkdfSync('sha256', recoveryKey, setId, RECOVERY_KEY_INFO, 32)));
}

/** SHA-256("keyward/recovery-share/v1" || set id || index || library share): one share's check value. */
export function shareCommitment(setId: Buffer, index: number, shamir: Buffer): Buffer {
  return createHash('sha256')
    .update(COMMITMENT_PREFIX)
    .update(setId)
    .update(Buffer.from([index]))
    .update(shamir)
    .digest();
}

/** Checks one decoded share against a stored set: its set id, its index and its commitment. */
export function verifyShare(share: RecoveryShare, set: RecoveryShareSetRecord): void {
  if (share.shareSetId !== set.shareSetId) {
    throw new KeyCustodyError(
      'RECOVERY_SHARE_WRONG',
      `this share belongs to share set ${share.shareSetId}, not to the current share set ${set.shareSetId} (an older set stops working when the shares are made again)`,
    );
  }
  const expected = share.index >= 1 && share.index <= set.shares ? set.commitments.subarray((share.index - 1) * COMMITMENT_LENGTH, share.index * COMMITMENT_LENGTH) : null;
  if (!expected || share.threshold !== set.threshold || !shareCommitment(Buffer.from(share.shareSetId, 'hex'), share.index, share.shamir).equals(expected)) {
    throw new KeyCustodyError('RECOVERY_SHARE_WRONG', `share ${share.index} does not match share set ${set.shareSetId}: it is not one of the shares made for it`);
  }
}

/** Combines K checked shares into the recovery key's private key; the caller wipes it. */
export async function combineShares(shares: readonly RecoveryShare[], set: RecoveryShareSetRecord): Promise<BackupPrivateKey> {
  if (shares.length < set.threshold) throw new KeyCustodyError('RECOVERY_SHARE_INVALID', `${shares.length} of ${set.threshold} shares are in: ${set.threshold} are needed`);
  const inputs = shares.slice(0, set.threshold).map((share) => new Uint8Array(share.shamir));
  const combined = await combine(inputs);
  const recoveryKey = Buffer.from(combined);
  combined.fill(0);
  for (const input of inputs) input.fill(0);
  try {
    const key = recoveryPrivateKey(recoveryKey, Buffer.from(set.shareSetId, 'hex'));
    if (!key.publicKey.equals(set.publicKey)) {
      key.wipe();
      throw new KeyCustodyError('RECOVERY_SHARE_WRONG', `the ${set.threshold} shares given do not combine to the recovery key of share set ${set.shareSetId}`);
    }
    return key;
  } finally {
    recoveryKey.fill(0);
  }
}

/** version 1 | set id 8 | index 1 | threshold 1 | library share 33 | checksum 6, in base32, groups of 5. */
export function encodeShare(setId: Buffer, index: number, threshold: number, shamir: Buffer): string {
  const body = Buffer.concat([Buffer.from([SHARE_VERSION]), setId, Buffer.from([index, threshold]), shamir]);
  const bytes = Buffer.concat([body, shareChecksum(body)]);
  try {
    return base32(bytes)
      .match(/.{1,5}/g)!
      .join('-');
  } finally {
    bytes.fill(0);
    body.fill(0);
  }
}

/**
 * Reads a share as typed: case, spaces and dashes do not matter. A typo is caught by the checksum
 * and refused with a message that says where to look, never what was typed.
 */
export function decodeShare(typed: string): RecoveryShare {
  const text = typed.replace(/[\s-]/g, '').toUpperCase();
  if (text.length === 0) throw new KeyCustodyError('RECOVERY_SHARE_INVALID', 'the share is empty');
  for (let i = 0; i < text.length; i++) {
    if (!BASE32.includes(text[i]!)) {
      throw new KeyCustodyError(
        'RECOVERY_SHARE_INVALID',
        `character ${i + 1} (group ${Math.floor(i / GROUP) + 1}) is not a letter A–Z or a digit 2–7: a share holds nothing else (type the letters O and I, never the digits 0 and 1)`,
      );
    }
  }
  if (text.length !== SHARE_CHARACTERS) {
    throw new KeyCustodyError('RECOVERY_SHARE_INVALID', `a share is ${SHARE_CHARACTERS} characters (${SHARE_CHARACTERS / GROUP} groups of ${GROUP}); this one has ${text.length}`);
  }
  const bytes = unbase32(text);
  try {
    if (!shareChecksum(bytes.subarray(0, SHAMIR_END)).equals(bytes.subarray(SHAMIR_END))) {
      throw new KeyCustodyError('RECOVERY_SHARE_INVALID', 'this share has a typo: its checksum does not match (check each group of five against the paper)');
    }
    if (bytes[0] !== SHARE_VERSION) throw new KeyCustodyError('RECOVERY_SHARE_INVALID', `this share is in format ${bytes[0]}, which this keyward does not read`);
    return {
      shareSetId: bytes.toString('hex', 1, SET_ID_END),
      index: bytes[INDEX_AT]!,
      threshold: bytes[THRESHOLD_AT]!,
      shamir: Buffer.from(bytes.subarray(SHAMIR_START, SHAMIR_END)),
    };
  } finally {
    bytes.fill(0);
  }
}

function shareChecksum(body: Buffer): Buffer {
  return createHash('sha256').update(body).digest().subarray(0, SHARE_CHECKSUM_LENGTH);
}

/** RFC 4648 base32, no padding (the length is a multiple of 5 bytes). */
function base32(bytes: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

function unbase32(text: string): Buffer {
  const out = Buffer.alloc(Math.floor((text.length * 5) / 8));
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const char of text) {
    value = ((value << 5) | BASE32.indexOf(char)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out[at++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  return out;
}
