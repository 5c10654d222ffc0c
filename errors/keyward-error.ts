import { safeErrorMessage } from '../db/driver-errors';

/**
 * keyward's one error type and its one table. Every error keyward raises on purpose is a
 * KeywardError with a stable code; the table gives, for each code, the CLI's exit code, the web's
 * HTTP status and a plain sentence for the user. The CLI, the web and docs/cli.md all read it, so
 * they cannot disagree. Messages (the table's and an error's own) never hold a secret.
 */

/**
 * The CLI's exit codes: a public contract (docs/cli.md shows this table, scripts rely on the
 * numbers). An exit code covers one or more error codes below; its meaning is what `keyward
 * exit-codes` prints.
 */
export const EXIT_CODES = {
  OK: { exit: 0, meaning: 'applied (or, for boot, the machine reached a state that serves)' },
  ERROR: { exit: 1, meaning: 'an unexpected error; nothing is assumed changed' },
  USAGE: { exit: 2, meaning: 'wrong command-line usage (an unknown command or option, a missing value, a secret given as an argument); nothing changed' },
  REFUSED: { exit: 3, meaning: 'refused: the event is not accepted now, or its payload or secrets are missing or invalid; nothing changed' },
  CONFLICT: { exit: 4, meaning: 'conflict: another writer changed the lifecycle first; re-read and retry' },
  REJECTED: { exit: 5, meaning: 'rejected: the event was accepted but its effect failed (wrong password, lockout, failed script); only counters changed' },
  STARTUP_REFUSED: { exit: 6, meaning: 'start-up refused: the database is newer than this keyward (VERSION_DOWNGRADE); nothing changed' },
  STARTUP_FAILED: { exit: 7, meaning: 'start-up failed, the database is damaged, or the DEK is unrecoverable; the reason is printed' },
  OUTAGE: { exit: 8, meaning: 'outage: the physical HSM cannot be reached; start-up retries' },
  AUDIT_BROKEN: {
    exit: 9,
    meaning: "audit: a hash chain is broken (audit verify: the transition log's or the device audit's; BOOT held in auditHold: the transition log's; the first broken row is printed)",
  },
  ARCHIVE_CORRUPT: { exit: 10, meaning: 'archive corrupt: a byte was altered or segments reordered; nothing restored' },
  WRONG_PASSPHRASE: { exit: 11, meaning: 'wrong passphrase for the archive; nothing restored' },
  ARCHIVE_TRUNCATED: { exit: 12, meaning: 'archive truncated; nothing restored' },
  MANIFEST_MISMATCH: { exit: 13, meaning: "manifest mismatch: an entry's hash or size differs from the manifest; nothing restored" },
  ARCHIVE_TOO_NEW: { exit: 14, meaning: 'archive too new: made by a newer keyward or schema; nothing restored' },
  NOT_AN_ARCHIVE: { exit: 15, meaning: 'not a keyward archive, or one whose Argon2id parameters are below the floor or above the ceiling (KEYWARD_KDF_MAX_*); nothing derived' },
  OUTPUT_EXISTS: { exit: 16, meaning: 'the backup output file exists already; it was not touched' },
  DRILL_FAILED: { exit: 17, meaning: 'the restore drill failed (the report says at which step)' },
  HOME_IN_USE: { exit: 18, meaning: 'another keyward process holds this home (a server, a restore): stop it first; nothing changed' },
  STORE_BEHIND: { exit: 19, meaning: 'start-up refused: the database is behind the high-water mark kept in the home (the store went back in time); nothing changed; --accept-older-store accepts it' },
  STORE_MISSING: {
    exit: 20,
    meaning: 'start-up refused: the database is missing or empty beside the token, PIN file, TLS directory or mark of an install; nothing changed; --fresh-start begins anew',
  },
} as const;

export type ExitName = keyof typeof EXIT_CODES;

/** The exit numbers by name, for `return EXIT.OK` and the like. */
export const EXIT = Object.fromEntries(Object.entries(EXIT_CODES).map(([name, { exit }]) => [name, exit])) as {
  readonly [K in ExitName]: (typeof EXIT_CODES)[K]['exit'];
};

export interface ErrorEntry {
  /** The CLI's exit code when this error ends a command. */
  exit: ExitName;
  /** The HTTP status when this error ends a request. */
  status: number;
  /** A short heading for the web's error page. */
  title: string;
  /** A plain sentence for the user: what happened and what was (not) changed. */
  message: string;
}

const entry = (exit: ExitName, status: number, title: string, message: string): ErrorEntry => ({ exit, status, title, message });

/** Token, PIN, KEK and DEK failures: the effects record them, so they reach a command only unexpectedly. */
const keyCustody = {
  MODULE_MISSING: entry('ERROR', 500, 'PKCS#11 module missing', 'The PKCS#11 module file does not exist.'),
  MODULE_LOAD_FAILED: entry('ERROR', 500, 'PKCS#11 module not loaded', 'The PKCS#11 module could not be loaded.'),
  TOKEN_MISSING: entry('ERROR', 500, 'Token missing', 'No token has the configured label.'),
  TOKEN_UNREACHABLE: entry('ERROR', 503, 'Token unreachable', 'The token cannot be reached now.'),
  PIN_MISSING: entry('ERROR', 500, 'PIN missing', 'The token PIN is not available to keyward.'),
  WRONG_PIN: entry('ERROR', 500, 'Wrong PIN', 'The token rejected the PIN.'),
  PIN_LOCKED: entry('ERROR', 500, 'PIN locked', "The token's PIN is locked."),
  PIN_SOURCE_READ_ONLY: entry('REFUSED', 409, 'PIN cannot be changed here', 'keyward cannot write where it reads the token PIN from, so it cannot change the PIN. Nothing was changed.'),
  KEK_MISSING: entry('ERROR', 500, 'KEK missing', 'The key-encryption key is not in the token.'),
  KEK_REPLACED: entry('ERROR', 500, 'KEK replaced', 'The key-encryption key in the token is not the one that wrapped the DEK.'),
  KEK_EXISTS: entry('ERROR', 500, 'KEK exists', 'The token already holds a key-encryption key with this label.'),
  KEK_AMBIGUOUS: entry('ERROR', 500, 'Several KEKs', 'More than one key-encryption key carries the label and none was named by its id.'),
  WRAPPED_BLOB_CORRUPT: entry('ERROR', 500, 'Wrapped DEK damaged', 'The wrapped DEK fails its integrity check.'),
  MECHANISM_UNSUPPORTED: entry('ERROR', 500, 'Mechanism unsupported', 'The token does not offer a mechanism keyward needs.'),
  PKCS11_ERROR: entry('ERROR', 500, 'Token error', 'The token reported an error.'),
  WRONG_BACKUP_PASSWORD: entry('ERROR', 403, 'Wrong backup password', 'The backup password is wrong.'),
  BACKUP_COPY_CORRUPT: entry('ERROR', 500, 'Backup copy damaged', 'The backup copy of the DEK is damaged.'),
  BACKUP_COPY_MISSING: entry('ERROR', 500, 'No backup copy', 'There is no backup copy of the DEK.'),
  BACKUP_KEY_MISMATCH: entry('ERROR', 500, 'Wrong backup key', 'The backup copy of the DEK is sealed to another backup key than the one the backup password opens.'),
  FIELD_CORRUPT: entry('ERROR', 500, 'Value damaged', 'An encrypted value in the database fails its integrity check.'),
  FIELD_FORMAT_UNKNOWN: entry('ERROR', 500, 'Value unreadable', 'An encrypted value in the database has a format keyward does not know.'),
  DEK_UNAVAILABLE: entry('ERROR', 503, 'DEK unavailable', 'The data-encryption key is not in memory.'),
  DEK_KEY_ID_MISMATCH: entry('ERROR', 500, 'Wrong DEK', 'A value was encrypted under another data-encryption key.'),
  DEK_USAGE_EXHAUSTED: entry('ERROR', 500, 'DEK used up', 'The data-encryption key has reached its limit of encryptions.'),
  DEK_NOT_PRIMARY: entry('CONFLICT', 409, 'Keyset rotated', 'Another process made a new data-encryption key the primary one; the write was not made.'),
  BACKUP_KEY_MISSING: entry('REFUSED', 409, 'Backup copy too old', 'The backup copy of the DEK is in the one-DEK format: change the backup password once before rotating the DEK.'),
  ROTATION_REFUSED: entry('REFUSED', 409, 'Rotation refused', 'The keys cannot be rotated now. Nothing was changed.'),
  SECOND_KEK_REFUSED: entry('REFUSED', 409, 'Second KEK refused', 'The second KEK cannot be added or removed now. Nothing was changed.'),
  RECOVERY_SHARE_INVALID: entry('REFUSED', 422, 'Share not readable', 'The recovery share was mistyped or is not a keyward recovery share. Nothing was changed.'),
  RECOVERY_SHARE_WRONG: entry('ERROR', 403, 'Wrong recovery share', 'The recovery share does not belong to the current share set. It counts as a failed attempt.'),
  RECOVERY_SHARES_MISSING: entry('REFUSED', 409, 'No recovery shares', 'No recovery share set has been made for this installation.'),
  RECOVERY_SHARES_NOT_SHOWN: entry('REFUSED', 409, 'Shares not shown', 'The recovery shares could not be shown to anyone, so none were made. Make them again.'),
} satisfies Record<string, ErrorEntry>;

/** The archive's format and the restore: each maps to the archive exit codes 10–16 as before. */
const archive = {
  NOT_AN_ARCHIVE: entry('NOT_AN_ARCHIVE', 422, 'Not an archive', 'This file is not a keyward archive. Nothing was restored.'),
  ARCHIVE_VERSION_UNSUPPORTED: entry('ARCHIVE_TOO_NEW', 422, 'Archive too new', 'The archive has a format this keyward does not read. Nothing was restored.'),
  WRONG_PASSPHRASE: entry('WRONG_PASSPHRASE', 422, 'Wrong passphrase', "The archive's passphrase is wrong. Nothing was restored."),
  ARCHIVE_CORRUPT: entry('ARCHIVE_CORRUPT', 422, 'Archive damaged', 'The archive is damaged: a byte was altered. Nothing was restored.'),
  ARCHIVE_SEGMENTS_REORDERED: entry('ARCHIVE_CORRUPT', 422, 'Archive damaged', "The archive's segments are out of order, repeated or missing. Nothing was restored."),
  ARCHIVE_TRUNCATED: entry('ARCHIVE_TRUNCATED', 422, 'Archive truncated', 'The archive ends too early: it was cut off while written, copied or uploaded. Nothing was restored.'),
  MANIFEST_MISMATCH: entry('MANIFEST_MISMATCH', 422, 'Manifest mismatch', 'An entry of the archive differs from its manifest. Nothing was restored.'),
  MANIFEST_INVALID: entry('MANIFEST_MISMATCH', 422, 'Manifest unreadable', "The archive's manifest is missing or unreadable. Nothing was restored."),
  INVALID_ENTRY_NAME: entry('ARCHIVE_CORRUPT', 422, 'Archive damaged', 'The archive holds an entry whose name is unsafe or repeated. Nothing was restored.'),
  WEAK_KDF_PARAMETERS: entry('NOT_AN_ARCHIVE', 422, 'Unacceptable key derivation', 'The Argon2id parameters are below the floor or above what keyward will allocate. Nothing was derived.'),
  OUTPUT_EXISTS: entry('OUTPUT_EXISTS', 409, 'Output exists', 'The output file exists already. It was not touched.'),
  ARCHIVE_TOO_NEW: entry('ARCHIVE_TOO_NEW', 422, 'Archive too new', 'The archive was made by a newer keyward or schema. Nothing was changed.'),
  SCHEMA_MISMATCH: entry('ARCHIVE_TOO_NEW', 422, 'Schema mismatch', "The archive's database does not match this keyward's schema. Nothing was changed."),
  RESTORE_FAILED: entry('ERROR', 500, 'Restore failed', 'The restore could not be completed.'),
  SQLITE_COPY_FAILED: entry('ERROR', 500, 'Database copy failed', 'The copy of the database failed.'),
  UNSUPPORTED_COLUMN_TYPE: entry('ERROR', 500, 'Database copy failed', 'A database column has a type the export cannot keep exactly.'),
  EXPORT_INVALID: entry('ERROR', 422, 'Database export invalid', "The archive's database export is incomplete or malformed. Nothing was changed."),
  DATABASE_NOT_EMPTY: entry('ERROR', 409, 'Database not empty', 'The target database already holds rows. Nothing was changed.'),
  IMPORT_FAILED: entry('ERROR', 500, 'Database import failed', 'The import into the database failed and was rolled back.'),
} satisfies Record<string, ErrorEntry>;

/**
 * The token set-up script's codes (scripts/exit-codes.tsv: the script exits by its own numbers).
 * A failed script is a rejected effect; scriptErrorCode maps the script's names to these codes.
 */
const tokenScript = {
  TOKEN_SCRIPT_USAGE: entry('REJECTED', 500, 'Token set-up failed', 'The token set-up script was called with wrong arguments.'),
  PIN_FILE_UNREADABLE: entry('REJECTED', 500, 'Token set-up failed', 'A PIN file is missing, unreadable or empty.'),
  TOOL_MISSING: entry('REJECTED', 500, 'Token set-up failed', 'A tool the token set-up needs is missing.'),
  NO_FREE_SLOT: entry('REJECTED', 409, 'Token set-up failed', 'The PKCS#11 module has no free slot for a new token.'),
  TOKEN_NOT_FOUND: entry('REJECTED', 404, 'Token set-up failed', 'No token has this label.'),
  INIT_TOKEN_FAILED: entry('REJECTED', 500, 'Token set-up failed', 'Initializing the token failed.'),
  INIT_PIN_FAILED: entry('REJECTED', 500, 'Token set-up failed', "Setting the new token's user PIN failed."),
  LABEL_AMBIGUOUS: entry('REJECTED', 409, 'Token set-up failed', 'More than one token has this label.'),
  PIN_TOO_SHORT: entry('REJECTED', 400, 'PIN too short', 'The PIN is shorter than this token allows. Nothing was changed on the token: choose a longer PIN.'),
  PIN_TOO_LONG: entry('REJECTED', 400, 'PIN too long', 'The PIN is longer than this token allows. Nothing was changed on the token: choose a shorter PIN.'),
  SCRIPT_KILLED: entry('REJECTED', 500, 'Token set-up failed', 'The token set-up script was stopped by a signal.'),
  SCRIPT_FAILED: entry('REJECTED', 500, 'Token set-up failed', 'The token set-up script failed with an exit code keyward does not know.'),
} satisfies Record<string, ErrorEntry>;

/** The web's own refusals: the pages show the error's message, the table's when it has none. */
const web = {
  NOT_FOUND: entry('ERROR', 404, 'Not found', 'There is no page at this address.'),
  FORM_EXPIRED: entry(
    'REFUSED',
    403,
    'Form expired',
    'This form was not sent by this page, or it has expired (for example after you logged in or out). Nothing was changed: go back, reload the page and send it again.',
  ),
  SETUP_LOCKED: entry('REFUSED', 403, 'Locked', 'The set-up is locked: enter the set-up code from keyward’s console first. Nothing was changed.'),
  NOT_IN_SETUP: entry('REFUSED', 409, 'Not now', 'keyward is not in its set-up now. Nothing was changed.'),
  STEP_OVER: entry('REFUSED', 409, 'This step is over', 'The set-up has moved on to another step. Nothing was changed: continue on the current step.'),
  NO_WAY_BACK: entry('REFUSED', 409, 'No way back', 'The set-up cannot go back from this step: the keys are made already. Nothing was changed.'),
  FORM_OUT_OF_DATE: entry('REFUSED', 409, 'This form is out of date', 'This form was shown before the set-up changed. Nothing was changed: reload the page, check it and send it again.'),
  TOO_MANY_ATTEMPTS: entry('REFUSED', 429, 'Too many attempts', 'Too many failed attempts from this address: wait and try again.'),
  BAD_UPLOAD: entry('REFUSED', 400, 'Bad upload', 'The upload could not be read. Nothing was changed.'),
  BODY_TOO_LARGE: entry('REFUSED', 413, 'Too large', 'The form is larger than keyward accepts. Nothing was changed.'),
  BAD_REQUEST: entry('REFUSED', 400, 'Bad request', 'The request could not be read. Nothing was changed.'),
  SETUP_CODE_WRONG: entry('REFUSED', 400, 'Wrong set-up code', 'This is not the set-up code keyward printed on its console at start-up.'),
  SETUP_CODE_USED: entry('REFUSED', 403, 'Set-up code used', 'This set-up code has been used already (it works once): restart keyward to get a new one on its console.'),
  INTERNAL: entry('ERROR', 500, 'Internal error', 'keyward could not complete this request.'),
} satisfies Record<string, ErrorEntry>;

/** The lifecycle, its input and the home. */
const lifecycle = {
  EFFECT_FAILED: entry('REJECTED', 500, 'Step failed', 'A step of the lifecycle failed for a reason keyward did not foresee; its message says what happened.'),
  UNEXPECTED: entry('ERROR', 500, 'Internal error', 'An unexpected error stopped keyward. Nothing is assumed changed.'),
  USAGE: entry('USAGE', 400, 'Wrong usage', 'The command line is not right. Nothing was changed.'),
  INVALID_PAYLOAD: entry('REFUSED', 400, 'Invalid input', "The event's payload is missing a field or has an invalid one. Nothing was changed."),
  INVALID_INPUT: entry('REFUSED', 400, 'Invalid input', 'A value given is missing or invalid. Nothing was changed.'),
  INVALID_TLS_INPUT: entry('REFUSED', 400, 'Invalid TLS input', 'A TLS file, password or name given is unusable. Nothing was changed.'),
  TLS_FILES: entry('ERROR', 500, 'TLS files unusable', 'The files of the TLS credential are missing, unreadable or do not belong together.'),
  NO_TLS_CREDENTIAL: entry('STARTUP_FAILED', 500, 'No TLS credential', 'There is no TLS credential to serve with: the start-up did not produce one.'),
  WEAK_PASSWORD: entry('REFUSED', 400, 'Weak password', 'The password does not meet the rules. Nothing was changed.'),
  SECRET_MISSING: entry('REFUSED', 400, 'Secret missing', 'A secret this event needs was not given. Nothing was changed.'),
  BUSY: entry('REFUSED', 409, 'Busy', 'keyward is still carrying out the previous step. Nothing was changed: wait a moment and try again.'),
  CONFLICT: entry('CONFLICT', 409, 'Conflict', 'Another writer changed the lifecycle first. Re-read and try again.'),
  LIFECYCLE_UNREADABLE: entry('ERROR', 500, 'Lifecycle unreadable', 'The persisted lifecycle cannot be used by this keyward. Nothing was changed.'),
  DATABASE_DAMAGED: entry('STARTUP_FAILED', 500, 'Database damaged', 'The database is damaged. Nothing was changed: restore a backup with `keyward restore`.'),
  HOME_IN_USE: entry('HOME_IN_USE', 409, 'Home in use', 'Another keyward process holds this home. Nothing was changed: stop it first.'),
  STORE_BEHIND: entry('STORE_BEHIND', 503, 'Start-up refused', 'Start-up refused: the database is behind the high-water mark kept in the home. Nothing was changed.'),
  STORE_MISSING: entry('STORE_MISSING', 503, 'Start-up refused', 'Start-up refused: the database is missing or empty beside what an install leaves behind. Nothing was changed.'),
} satisfies Record<string, ErrorEntry>;

export const ERRORS = { ...keyCustody, ...archive, ...tokenScript, ...web, ...lifecycle } satisfies Record<string, ErrorEntry>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

/** The base of every error keyward raises on purpose. `message` is a plain sentence; `code` is the detail. */
export class KeywardError extends Error {
  readonly code: ErrorCode;

  /** Without a message of its own, the error says the table's sentence for its code. */
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERRORS[code].message, options);
    this.name = 'KeywardError';
    this.code = code;
  }

  get entry(): ErrorEntry {
    return ERRORS[this.code];
  }

  get exitCode(): number {
    return EXIT[this.entry.exit];
  }

  get status(): number {
    return this.entry.status;
  }
}

/** The token script's names (scripts/exit-codes.tsv) as error codes: the script's USAGE is not the CLI's. */
const SCRIPT_NAMES: Readonly<Record<string, ErrorCode>> = { USAGE: 'TOKEN_SCRIPT_USAGE', KILLED: 'SCRIPT_KILLED' };

export function scriptErrorCode(name: string): ErrorCode {
  return SCRIPT_NAMES[name] ?? (name !== 'OK' && isErrorCode(name) ? name : 'SCRIPT_FAILED');
}

/** Driver errors that mean the same to every caller become KeywardErrors; anything else stays as it is. */
export function asKeywardError(error: unknown): KeywardError | null {
  if (error instanceof KeywardError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') {
    const message = `the database is damaged: ${safeErrorMessage(error)}. Start-up failed; nothing was changed. Restore a backup with \`keyward restore\`.`;
    return new KeywardError('DATABASE_DAMAGED', message, { cause: error });
  }
  return null;
}
