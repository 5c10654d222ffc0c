import { KeyCustodyError } from './errors';
import { decodeBase64Strict } from './base64';
import type { DekKeyring } from './dek-keyring';
import { FieldAead } from './field-aead';
import { decryptTrustpointField } from './trustpoint-legacy';

/** A secret column: its table and column are bound into the ciphertext as associated data. */
export interface FieldRef {
  table: string;
  column: string;
}

/**
 * How secret columns are stored. Repositories call this; their callers only see plaintext.
 */
export interface FieldCodec {
  readonly encrypts: boolean;
  seal(value: string, field: FieldRef): string;
  open(stored: string, field: FieldRef): string;
}

/** Storage type "software": secrets are stored as they are, as Trustpoint does (the UI says so). */
export class PlaintextFieldCodec implements FieldCodec {
  readonly encrypts = false;
  seal(value: string): string {
    return value;
  }
  open(stored: string): string {
    return stored;
  }
}

export const FIELD_PREFIX = 'kw1:';

/** HSM storage types: AES-256-GCM under the DEK; reads Trustpoint's format for imports. */
export class EncryptedFieldCodec implements FieldCodec {
  readonly encrypts = true;
  private readonly aead: FieldAead;
  /** Decoded values are decrypted at once and never kept, so one buffer serves every read. */
  private readonly scratch = Buffer.alloc(4096);

  constructor(private readonly keyring: DekKeyring) {
    this.aead = new FieldAead(keyring);
  }

  seal(value: string, field: FieldRef): string {
    return FIELD_PREFIX + this.aead.encrypt(Buffer.from(value, 'utf8'), associatedData(field)).toString('base64');
  }

  open(stored: string, field: FieldRef): string {
    if (stored.startsWith(FIELD_PREFIX)) {
      const raw = decodeBase64Strict(stored.slice(FIELD_PREFIX.length), this.scratch);
      if (raw === null) throw new KeyCustodyError('FIELD_CORRUPT', `${field.table}.${field.column}: encrypted value is not canonical base64`);
      return this.aead.decrypt(raw, associatedData(field)).toString('utf8');
    }
    if (stored.startsWith('kw') && /^kw\d+:/.test(stored)) {
      throw new KeyCustodyError('FIELD_FORMAT_UNKNOWN', `${field.table}.${field.column}: value is in a newer keyward format (${stored.slice(0, stored.indexOf(':'))})`);
    }
    return decryptTrustpointField(stored, this.keyring.currentKey());
  }
}

const associatedDataCache = new Map<string, Map<string, Buffer>>();

/** "table.column" as bytes; a handful of distinct values, so kept rather than re-encoded per value. */
export function associatedData(field: FieldRef): Buffer {
  let columns = associatedDataCache.get(field.table);
  if (!columns) associatedDataCache.set(field.table, (columns = new Map()));
  let bytes = columns.get(field.column);
  if (!bytes) columns.set(field.column, (bytes = Buffer.from(`${field.table}.${field.column}`, 'utf8')));
  return bytes;
}
