import { createHash } from 'node:crypto';
import { DEFAULT_KDF_CEILING, exceedsKdfCeiling, kdfCeilingMessage, MAX_KDF_CEILING, MINIMUM_KDF, type KdfParams } from '../crypto/backup-copy';
import { BackupArchiveError } from './archive-errors';

/**
 * The container layout of docs/backup-format.md, byte by byte. Integers are big-endian.
 *
 *   header || segment_0 || … || segment_{n-1} || trailer
 */

// PNG-style magic: the high byte catches 7-bit transfers, CR LF and LF catch newline conversion.
export const MAGIC = Buffer.from([0x89, 0x4b, 0x57, 0x41, 0x0d, 0x0a, 0x1a, 0x0a]);
export const FORMAT_VERSION = 1;
const KDF_ARGON2ID = 2;
export { ARGON2_VERSION } from '../crypto/password-keys';
import { ARGON2_VERSION } from '../crypto/password-keys';

export const SALT_LENGTH = 16;
export const NONCE_PREFIX_LENGTH = 7;
export const VERIFIER_LENGTH = 16;
const CHECKSUM_LENGTH = 8;
export const TAG_LENGTH = 16;
/** magic, format version, header length: enough to decide whether and how to read the rest. */
export const PREAMBLE_LENGTH = 12;
const FIXED_LENGTH = 51; // bytes 0..50, before the variable-length writer version
const MAX_WRITER_VERSION_LENGTH = 64;
export const MAX_HEADER_LENGTH = FIXED_LENGTH + MAX_WRITER_VERSION_LENGTH + VERIFIER_LENGTH + CHECKSUM_LENGTH;

export const DEFAULT_SEGMENT_SIZE = 64 * 1024;
export const MIN_SEGMENT_SIZE = 256;
export const MAX_SEGMENT_SIZE = 16 * 1024 * 1024;
/** The segment counter is 32 bits: 2^32 segments of 64 KiB is 256 TiB. */
export const MAX_SEGMENTS = 2 ** 32;

export const TRAILER_MAGIC = Buffer.from('KWA-END\n', 'ascii');
export const TRAILER_LENGTH = TRAILER_MAGIC.length + 8;

export interface ArchiveHeader {
  formatVersion: number;
  kdf: KdfParams;
  salt: Buffer;
  noncePrefix: Buffer;
  segmentSize: number;
  /** The keyward version that wrote the archive. */
  writerVersion: string;
  verifier: Buffer;
  /** The header exactly as stored: the associated data of every segment. */
  bytes: Buffer;
}

export function checkKdfForWriting(kdf: KdfParams): void {
  if (
    !Number.isInteger(kdf.memoryKiB) ||
    !Number.isInteger(kdf.iterations) ||
    !Number.isInteger(kdf.parallelism) ||
    kdf.memoryKiB < MINIMUM_KDF.memoryKiB ||
    kdf.iterations < MINIMUM_KDF.iterations ||
    kdf.parallelism < 1
  ) {
    throw weakKdf(kdf);
  }
  checkKdfCeiling(kdf, MAX_KDF_CEILING);
}

function checkKdfCeiling(kdf: KdfParams, ceiling: KdfParams): void {
  if (exceedsKdfCeiling(kdf, ceiling)) throw new BackupArchiveError('WEAK_KDF_PARAMETERS', kdfCeilingMessage(kdf, ceiling));
}

function weakKdf(kdf: KdfParams): BackupArchiveError {
  return new BackupArchiveError(
    'WEAK_KDF_PARAMETERS',
    `Argon2id parameters m=${kdf.memoryKiB} KiB, t=${kdf.iterations}, p=${kdf.parallelism} are below the floor of m=${MINIMUM_KDF.memoryKiB} KiB, t=${MINIMUM_KDF.iterations}`,
  );
}

/** The header without its verifier and checksum; `sealHeader` adds them once the key is derived. */
export function headerPrefix(fields: { kdf: KdfParams; salt: Buffer; noncePrefix: Buffer; segmentSize: number; writerVersion: string }): Buffer {
  const version = Buffer.from(fields.writerVersion, 'utf8');
  if (version.length < 1 || version.length > MAX_WRITER_VERSION_LENGTH) throw new RangeError(`the keyward version must be 1..${MAX_WRITER_VERSION_LENGTH} bytes`);
  if (fields.segmentSize < MIN_SEGMENT_SIZE || fields.segmentSize > MAX_SEGMENT_SIZE) throw new RangeError(`segment size must be ${MIN_SEGMENT_SIZE}..${MAX_SEGMENT_SIZE} bytes`);
  const headerLength = FIXED_LENGTH + version.length + VERIFIER_LENGTH + CHECKSUM_LENGTH;
  const out = Buffer.alloc(FIXED_LENGTH + version.length);
  MAGIC.copy(out, 0);
  out.writeUInt16BE(FORMAT_VERSION, 8);
  out.writeUInt16BE(headerLength, 10);
  out[12] = KDF_ARGON2ID;
  out[13] = ARGON2_VERSION;
  out.writeUInt32BE(fields.kdf.memoryKiB, 14);
  out.writeUInt32BE(fields.kdf.iterations, 18);
  out[22] = fields.kdf.parallelism;
  fields.salt.copy(out, 23);
  fields.noncePrefix.copy(out, 39);
  out.writeUInt32BE(fields.segmentSize, 46);
  out[50] = version.length;
  version.copy(out, 51);
  return out;
}

export function sealHeader(prefix: Buffer, verifier: Buffer): Buffer {
  const body = Buffer.concat([prefix, verifier]);
  return Buffer.concat([body, checksum(body)]);
}

/**
 * Checks the first 12 bytes and returns the header length. Magic first, then version: a newer
 * container may lay out everything after byte 12 differently.
 */
export function readPreamble(preamble: Buffer, fileSize: number): number {
  const available = Math.min(preamble.length, MAGIC.length);
  if (!preamble.subarray(0, available).equals(MAGIC.subarray(0, available))) {
    throw new BackupArchiveError('NOT_AN_ARCHIVE', 'the file is not a keyward backup archive (its first bytes are not the archive magic)');
  }
  if (preamble.length < PREAMBLE_LENGTH) {
    throw new BackupArchiveError('ARCHIVE_TRUNCATED', `the archive is truncated: ${fileSize} bytes, shorter than its header`);
  }
  const version = preamble.readUInt16BE(8);
  if (version !== FORMAT_VERSION) {
    throw new BackupArchiveError(
      'ARCHIVE_VERSION_UNSUPPORTED',
      version > FORMAT_VERSION
        ? `the archive uses container format ${version}, newer than format ${FORMAT_VERSION} that this keyward reads: verify or restore it with a newer keyward`
        : `the archive names container format ${version}, which this keyward does not read (it reads format ${FORMAT_VERSION})`,
    );
  }
  const length = preamble.readUInt16BE(10);
  if (length < FIXED_LENGTH + 1 + VERIFIER_LENGTH + CHECKSUM_LENGTH || length > MAX_HEADER_LENGTH) {
    throw new BackupArchiveError('ARCHIVE_CORRUPT', `the archive header is damaged (it claims ${length} bytes)`);
  }
  if (fileSize < length) {
    throw new BackupArchiveError('ARCHIVE_TRUNCATED', `the archive is truncated: ${fileSize} bytes, shorter than its ${length}-byte header`);
  }
  return length;
}

/**
 * Parses a whole header; the checksum catches damage before the (slow) key derivation, and
 * parameters outside floor..`kdfCeiling` are refused before it too.
 */
export function parseHeader(bytes: Buffer, kdfCeiling: KdfParams = DEFAULT_KDF_CEILING): ArchiveHeader {
  const bodyEnd = bytes.length - CHECKSUM_LENGTH;
  if (!checksum(bytes.subarray(0, bodyEnd)).equals(bytes.subarray(bodyEnd))) {
    throw new BackupArchiveError('ARCHIVE_CORRUPT', 'the archive header fails its checksum: the file was altered or damaged');
  }
  const versionLength = bytes[50]!;
  if (FIXED_LENGTH + versionLength + VERIFIER_LENGTH + CHECKSUM_LENGTH !== bytes.length) {
    throw new BackupArchiveError('ARCHIVE_CORRUPT', 'the archive header is inconsistent (writer version length)');
  }
  if (bytes[12] !== KDF_ARGON2ID || bytes[13] !== ARGON2_VERSION) {
    throw new BackupArchiveError('ARCHIVE_VERSION_UNSUPPORTED', `the archive names KDF ${bytes[12]} version ${bytes[13]}; this keyward reads Argon2id version 0x13`);
  }
  const kdf: KdfParams = { memoryKiB: bytes.readUInt32BE(14), iterations: bytes.readUInt32BE(18), parallelism: bytes[22]! };
  // Refuse to derive with parameters below the floor: a lowered header is either damage or an attack.
  if (kdf.memoryKiB < MINIMUM_KDF.memoryKiB || kdf.iterations < MINIMUM_KDF.iterations || kdf.parallelism < 1) throw weakKdf(kdf);
  checkKdfCeiling(kdf, kdfCeiling);
  const segmentSize = bytes.readUInt32BE(46);
  if (segmentSize < MIN_SEGMENT_SIZE || segmentSize > MAX_SEGMENT_SIZE) {
    throw new BackupArchiveError('ARCHIVE_CORRUPT', `the archive header names a segment size of ${segmentSize} bytes, outside ${MIN_SEGMENT_SIZE}..${MAX_SEGMENT_SIZE}`);
  }
  const verifierStart = FIXED_LENGTH + versionLength;
  return {
    formatVersion: bytes.readUInt16BE(8),
    kdf,
    salt: Buffer.from(bytes.subarray(23, 39)),
    noncePrefix: Buffer.from(bytes.subarray(39, 46)),
    segmentSize,
    writerVersion: bytes.toString('utf8', FIXED_LENGTH, verifierStart),
    verifier: Buffer.from(bytes.subarray(verifierStart, verifierStart + VERIFIER_LENGTH)),
    bytes: Buffer.from(bytes),
  };
}

/** prefix(7) || u32 counter || flag: 1 for the final segment, 0 otherwise (the STREAM construction). */
export function segmentNonce(prefix: Buffer, counter: number, final: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  prefix.copy(nonce, 0);
  nonce.writeUInt32BE(counter, 7);
  nonce[11] = final ? 1 : 0;
  return nonce;
}

export function encodeTrailer(fileLength: number): Buffer {
  const out = Buffer.alloc(TRAILER_LENGTH);
  TRAILER_MAGIC.copy(out, 0);
  out.writeBigUInt64BE(BigInt(fileLength), TRAILER_MAGIC.length);
  return out;
}

/** The trailer is valid when it carries the end magic and the file's own length. */
export function isValidTrailer(trailer: Buffer, fileLength: number): boolean {
  return trailer.length === TRAILER_LENGTH && trailer.subarray(0, TRAILER_MAGIC.length).equals(TRAILER_MAGIC) && trailer.readBigUInt64BE(TRAILER_MAGIC.length) === BigInt(fileLength);
}

function checksum(body: Buffer): Buffer {
  return createHash('sha256').update(body).digest().subarray(0, CHECKSUM_LENGTH);
}
