import { KeyCustodyError } from '../errors/key-custody-error';
import type { DekKeyring } from './dek-keyring';
import { FIELD_FORMAT_VERSION, FieldAead } from './field-aead';
import { decryptTrustpointField } from './trustpoint-legacy';

/** A secret column: its table and column are bound into the ciphertext as associated data. */
export interface FieldRef {
  table: string;
  column: string;
}

/** A secret column's stored value: bytes (keyward writes binary columns), or text from an import. */
export type StoredField = Buffer | string;

/**
 * How secret columns are stored. Repositories call this; their callers only see plaintext.
 */
export interface FieldCodec {
  readonly encrypts: boolean;
  seal(value: string, field: FieldRef): Buffer;
  open(stored: StoredField, field: FieldRef): string;
}

/** Storage type "software": secrets are stored as they are (UTF-8), as Trustpoint does; the UI says so. */
export class PlaintextFieldCodec implements FieldCodec {
  readonly encrypts = false;
  seal(value: string): Buffer {
    return Buffer.from(value, 'utf8');
  }
  open(stored: StoredField): string {
    return typeof stored === 'string' ? stored : stored.toString('utf8');
  }
}

/**
 * HSM storage types: AES-256-GCM under the DEK (docs/formats.md §4), stored as bytes. Reads
 * Trustpoint's base64 text for imports: a keyward value starts with its format version, a byte below
 * 0x20; Trustpoint's base64 never does.
 */
export class EncryptedFieldCodec implements FieldCodec {
  readonly encrypts = true;
  private readonly aead: FieldAead;

  constructor(private readonly keyring: DekKeyring) {
    this.aead = new FieldAead(keyring);
  }

  seal(value: string, field: FieldRef): Buffer {
    return this.aead.encrypt(Buffer.from(value, 'utf8'), associatedData(field));
  }

  open(stored: StoredField, field: FieldRef): string {
    if (typeof stored !== 'string' && stored.length > 0 && stored[0]! < 0x20) {
      if (stored[0] !== FIELD_FORMAT_VERSION) {
        throw new KeyCustodyError('FIELD_FORMAT_UNKNOWN', `${field.table}.${field.column}: value has format version ${stored[0]}; this keyward reads version ${FIELD_FORMAT_VERSION}`);
      }
      return this.aead.decryptUtf8(stored, associatedData(field));
    }
    // Trustpoint's format names no key: the current DEK first, then (during a rotation) the others.
    const text = typeof stored === 'string' ? stored : stored.toString('latin1');
    const others = this.keyring.keyIds().filter((keyId) => keyId !== this.keyring.current);
    try {
      return decryptTrustpointField(text, this.keyring.currentKey());
    } catch (error) {
      for (const keyId of others) {
        try {
          return decryptTrustpointField(text, this.keyring.key(keyId));
        } catch {
          // not this one either
        }
      }
      throw error;
    }
  }
}

const associatedDataCache = new Map<string, Map<string, Buffer>>();

/** "table.column" as bytes; a handful of distinct values, so kept rather than re-encoded per value. */
export function associatedData(field: FieldRef): Buffer {
  let columns = associatedDataCache.get(field.table);
  if (!columns) associatedDataCache.set(field.table, (columns = new Map<string, Buffer>()));
  let bytes = columns.get(field.column);
  if (!bytes) columns.set(field.column, (bytes = Buffer.from(`${field.table}.${field.column}`, 'utf8')));
  return bytes;
}
