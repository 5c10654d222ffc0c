import { KeywardError } from './keyward-error';

/**
 * Every failure of the key hierarchy has its own code, so that callers (the machine, the CLI,
 * the web pages) can tell an outage from a loss from a wrong password without parsing messages.
 * Messages never contain secret material.
 */
export type KeyCustodyErrorCode =
  | 'MODULE_MISSING'
  | 'MODULE_LOAD_FAILED'
  | 'TOKEN_MISSING'
  | 'TOKEN_UNREACHABLE'
  | 'PIN_MISSING'
  | 'WRONG_PIN'
  | 'PIN_LOCKED'
  | 'PIN_TOO_LONG'
  | 'PIN_TOO_SHORT'
  | 'PIN_SOURCE_READ_ONLY'
  | 'KEK_MISSING'
  | 'KEK_REPLACED'
  | 'KEK_EXISTS'
  | 'KEK_AMBIGUOUS'
  | 'WRAPPED_BLOB_CORRUPT'
  | 'MECHANISM_UNSUPPORTED'
  | 'PKCS11_ERROR'
  | 'WRONG_BACKUP_PASSWORD'
  | 'BACKUP_COPY_CORRUPT'
  | 'BACKUP_COPY_MISSING'
  | 'BACKUP_KEY_MISMATCH'
  | 'WEAK_KDF_PARAMETERS'
  | 'FIELD_CORRUPT'
  | 'FIELD_FORMAT_UNKNOWN'
  | 'DEK_UNAVAILABLE'
  | 'DEK_KEY_ID_MISMATCH'
  | 'DEK_USAGE_EXHAUSTED'
  | 'DEK_NOT_PRIMARY'
  | 'BACKUP_KEY_MISSING'
  | 'ROTATION_REFUSED'
  | 'SECOND_KEK_REFUSED'
  | 'RECOVERY_SHARE_INVALID'
  | 'RECOVERY_SHARE_WRONG'
  | 'RECOVERY_SHARES_MISSING'
  | 'RECOVERY_SHARES_NOT_SHOWN';

export class KeyCustodyError extends KeywardError {
  declare readonly code: KeyCustodyErrorCode;

  constructor(code: KeyCustodyErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'KeyCustodyError';
  }
}

export function isKeyCustodyError(error: unknown, code?: KeyCustodyErrorCode): error is KeyCustodyError {
  return error instanceof KeyCustodyError && (code === undefined || error.code === code);
}
