import { KeywardError } from '../errors/keyward-error';

/**
 * Every way an archive can fail has its own code, so the CLI, restore and the drill can tell a wrong
 * passphrase from a damaged file from a truncated upload without parsing messages. Messages name
 * files, entries, offsets and numbers, never the passphrase or any content of the archive.
 */
export type BackupArchiveErrorCode =
  /** The file does not start with the archive magic. */
  | 'NOT_AN_ARCHIVE'
  /** The container format is newer (or other) than this code reads. */
  | 'ARCHIVE_VERSION_UNSUPPORTED'
  /** The passphrase verifier in the header does not match. */
  | 'WRONG_PASSPHRASE'
  /** Authentication failed: bytes were altered or damaged (or the header checksum failed). */
  | 'ARCHIVE_CORRUPT'
  /** Every segment is authentic but they are out of order, duplicated, or one is missing. */
  | 'ARCHIVE_SEGMENTS_REORDERED'
  /** The file ends before the stream's final segment: an interrupted write, copy or upload. */
  | 'ARCHIVE_TRUNCATED'
  /** An entry's size or SHA-256 differs from the manifest, or an entry is missing or extra. */
  | 'MANIFEST_MISMATCH'
  /** manifest.json is missing, not the last entry, not JSON, or lacks a required field. */
  | 'MANIFEST_INVALID'
  /** An entry name that is not a safe relative path, or appears twice. */
  | 'INVALID_ENTRY_NAME'
  /** Argon2id parameters below the floor (or above what a reader will allocate). */
  | 'WEAK_KDF_PARAMETERS'
  /** The output file or directory already exists; nothing was written. */
  | 'OUTPUT_EXISTS';

export class BackupArchiveError extends KeywardError {
  declare readonly code: BackupArchiveErrorCode;
  /** For MANIFEST_MISMATCH: every entry with its verdict, so a CLI can print the table. */
  readonly entries?: ReadonlyArray<{ name: string; size: number; sha256: string; ok: boolean }>;

  constructor(code: BackupArchiveErrorCode, message: string, options?: { cause?: unknown; entries?: BackupArchiveError['entries'] }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BackupArchiveError';
    if (options?.entries) this.entries = options.entries;
  }
}

export function isBackupArchiveError(error: unknown, code?: BackupArchiveErrorCode): error is BackupArchiveError {
  return error instanceof BackupArchiveError && (code === undefined || error.code === code);
}
