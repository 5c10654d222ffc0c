import { KeywardError } from '../errors/keyward-error';

/**
 * Failures of the database copy, export and import. Messages name tables, columns, files and line
 * numbers, never a row's values (a column may hold a plaintext secret under software storage), and
 * driver errors are reduced to their SQLSTATE or SQLite code for the same reason.
 */
export type DatabaseCopyErrorCode =
  /** SQLite's VACUUM INTO failed, or the copy fails its integrity check. */
  | 'SQLITE_COPY_FAILED'
  /** A column type the export has no lossless encoding for. */
  | 'UNSUPPORTED_COLUMN_TYPE'
  /** The export's files are missing, malformed, or disagree with export.json. */
  | 'EXPORT_INVALID'
  /** The target database's tables, columns or migrations differ from the export's. */
  | 'SCHEMA_MISMATCH'
  /** The target database already holds rows. */
  | 'DATABASE_NOT_EMPTY'
  /** An insert or a sequence update failed; the transaction was rolled back. */
  | 'IMPORT_FAILED';

export class DatabaseCopyError extends KeywardError {
  declare readonly code: DatabaseCopyErrorCode;

  constructor(code: DatabaseCopyErrorCode, message: string) {
    super(code, message);
    this.name = 'DatabaseCopyError';
  }
}

export function isDatabaseCopyError(error: unknown, code?: DatabaseCopyErrorCode): error is DatabaseCopyError {
  return error instanceof DatabaseCopyError && (code === undefined || error.code === code);
}

/** The driver's error code only: PostgreSQL's detail and SQLite's message can quote row values. */
export function driverCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'unknown';
}
