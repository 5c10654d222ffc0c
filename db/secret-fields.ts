import type { Knex } from 'knex';
import { DekKeyring } from '../crypto/dek-keyring';
import { EncryptedFieldCodec, FieldCodec, PlaintextFieldCodec, StoredField } from '../crypto/field-codec';
import { isHsmStorage, StorageType } from '../hsm/storage-type';
import { isKeyCustodyError, KeyCustodyError } from '../errors/key-custody-error';
import { ValidationError } from './validation';
import type { KeyMaterialRepository } from './repositories/key-material-repository';
import type { StorageConfigRepository } from './repositories/storage-config-repository';

/** Every secret column (docs/formats.md §4), by table. */
export const SECRET_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  devices: ['est_password', 'cmp_shared_secret'],
  credentials: ['private_key'],
  tls_server_credentials: ['private_key'],
  custody_canary: ['value'],
  log_chain_keys: ['sealed_key'],
  web_secrets: ['value'],
};

/** Tables whose values may be plaintext under HSM storage for a while (the web's keys, until the DEK is back). */
const PLAINTEXT_BY_DESIGN = new Set(['web_secrets']);

/** Rows that mean nothing once their secret cannot be read: they are deleted rather than kept dead. */
const DISPOSABLE = new Set(['tls_server_credentials', 'custody_canary', 'web_secrets']);

type Values<K extends string> = Record<K, string | null>;
type Stored<K extends string> = Record<K, StoredField | null>;
/** A row's id and its secret columns. */
type SecretRow = { id: number } & Record<string, StoredField | null>;

/**
 * Seals and opens the secret columns of a row for the repositories, with the codec the storage type
 * calls for, and counts GCM encryptions per DEK in the same transaction as the write.
 */
export class SecretFields {
  private readonly plaintext = new PlaintextFieldCodec();
  private readonly encrypted: EncryptedFieldCodec;

  constructor(
    private readonly storage: StorageConfigRepository,
    private readonly keyMaterial: KeyMaterialRepository,
    private readonly keyring: DekKeyring,
  ) {
    this.encrypted = new EncryptedFieldCodec(keyring);
  }

  /** True when this process holds a DEK to seal with (none before the wizard creates it, or after a token loss). */
  get hasDek(): boolean {
    return this.keyring.current !== null;
  }

  async codec(trx?: Knex): Promise<FieldCodec> {
    return isHsmStorage(await this.storage.storageType(trx)) ? this.encrypted : this.plaintext;
  }

  /**
   * Loads the keyset again when another process rotated it (a DEK this keyring lacks, or a
   * promotion it missed); set by the key custody, which holds the KEK.
   */
  reloadKeyset: (() => Promise<void>) | null = null;

  async seal<K extends string>(trx: Knex, table: string, values: Values<K>): Promise<Stored<K>> {
    const codec = await this.codec(trx);
    for (let attempt = 0; ; attempt++) {
      const keyId = this.keyring.current;
      const sealed = {} as Stored<K>;
      let encryptions = 0;
      for (const column of Object.keys(values) as K[]) {
        const value = values[column];
        sealed[column] = value === null ? null : codec.seal(value, { table, column });
        if (value !== null && codec.encrypts) encryptions += 1;
      }
      if (encryptions === 0) return sealed;
      try {
        // The count is the fence: it commits only while the DEK sealed with is still the primary.
        if (keyId !== this.keyring.current) throw new KeyCustodyError('DEK_NOT_PRIMARY', `the keyring moved from DEK ${keyId} while sealing`);
        await this.keyMaterial.addEncryptions(keyId!, encryptions, trx);
        return sealed;
      } catch (error) {
        if (!isKeyCustodyError(error) || error.code !== 'DEK_NOT_PRIMARY' || attempt > 0 || !this.reloadKeyset) throw error;
        await this.reloadKeyset();
      }
    }
  }

  async open<K extends string>(table: string, row: Stored<K>, columns: readonly K[]): Promise<Values<K>> {
    const codec = await this.codec();
    const openAll = () => {
      const opened = {} as Values<K>;
      for (const column of columns) {
        const value = row[column];
        opened[column] = value === null || value === undefined ? null : codec.open(value, { table, column });
      }
      return opened;
    };
    try {
      return openAll();
    } catch (error) {
      // A value under a DEK another process added since this keyring was loaded.
      if (!isKeyCustodyError(error) || error.code !== 'DEK_UNAVAILABLE' || this.keyring.current === null || !this.reloadKeyset) throw error;
      await this.reloadKeyset();
      return openAll();
    }
  }

  /**
   * Records the storage type and brings every stored secret to its format in the same transaction
   * (docs/formats.md §4 holds for every row). Plaintext → HSM with no DEK yet (the wizard makes it
   * in the next step): a TLS credential or canary is deleted, as nothing could ever open it; other
   * values wait for sealPlaintext(). HSM → software without the DEK: refused, nothing changed.
   */
  async changeStorageType(target: StorageType): Promise<void> {
    await this.storage.db.transaction(async (trx) => {
      const fromPlain = !isHsmStorage(await this.storage.storageType(trx));
      const toPlain = !isHsmStorage(target);
      // First, so that seal() below (same transaction) writes the target's format.
      await this.storage.setStorageType(target, trx);
      if (fromPlain !== toPlain) {
        const hasDek = this.keyring.current !== null;
        for (const [table, columns] of Object.entries(SECRET_COLUMNS)) {
          for (const row of await trx(table).select<SecretRow[]>('id', ...columns)) {
            const present = columns.filter((column) => row[column] !== null && row[column] !== undefined);
            if (present.length === 0) continue;
            if (!hasDek && DISPOSABLE.has(table)) {
              await trx(table).where({ id: row.id }).delete();
            } else if (toPlain) {
              if (!hasDek) throw new ValidationError('storageType', `${table} holds values sealed under a DEK this process cannot unwrap: software storage cannot take them; nothing was changed`);
              const update: Record<string, Buffer> = {};
              for (const column of present.filter((c) => !isPlaintext(row[c]))) update[column] = this.plaintext.seal(this.encrypted.open(row[column]!, { table, column }));
              if (Object.keys(update).length > 0) await trx(table).where({ id: row.id }).update(update);
            } else if (hasDek) {
              const plaintext = present.filter((c) => isPlaintext(row[c]));
              if (plaintext.length > 0) await this.sealRow(trx, table, row, plaintext);
            }
          }
        }
      }
    });
  }

  /**
   * Under HSM storage with the DEK loaded: seals every value still in plaintext (written before
   * the storage type was chosen). A value the DEK opens (keyward's format, or Trustpoint's) is kept.
   */
  async sealPlaintext(): Promise<number> {
    if (!isHsmStorage(await this.storage.storageType()) || this.keyring.current === null) return 0;
    let sealed = 0;
    await this.storage.db.transaction(async (trx) => {
      for (const [table, columns] of Object.entries(SECRET_COLUMNS)) {
        for (const row of await trx(table).select<SecretRow[]>('id', ...columns)) {
          const plaintext = columns.filter((column) => isPlaintext(row[column]) && !this.opens(row[column], { table, column }));
          if (plaintext.length === 0) continue;
          await this.sealRow(trx, table, row, plaintext);
          sealed += plaintext.length;
        }
      }
    });
    return sealed;
  }

  /**
   * Opens every stored secret value with the codec of the storage type (after an auto-restore, the
   * recovered keyset): how many there are and how many opened, and where those that did not are.
   * Counts and places only; no value leaves this method.
   */
  async checkAll(batchSize = 500): Promise<{ checked: number; readable: number; unreadable: string[] }> {
    const codec = await this.codec();
    const result = { checked: 0, readable: 0, unreadable: [] as string[] };
    for (const [table, columns] of Object.entries(SECRET_COLUMNS)) {
      for (let after = 0; ;) {
        const rows = await this.storage
          .db(table)
          .select<SecretRow[]>('id', ...columns)
          .where('id', '>', after)
          .orderBy('id')
          .limit(batchSize);
        for (const row of rows) {
          for (const column of columns) {
            const stored = row[column];
            if (stored === null || stored === undefined) continue;
            result.checked += 1;
            try {
              // The web's interim CSRF key stays plaintext through auto-restore (server/web/csrf.ts): it reads as it is.
              if (!(PLAINTEXT_BY_DESIGN.has(table) && isPlaintext(stored) && !this.opens(stored, { table, column }))) codec.open(stored, { table, column });
              result.readable += 1;
            } catch {
              if (result.unreadable.length < 20) result.unreadable.push(`${table}.${column} #${row.id}`);
            }
          }
        }
        if (rows.length < batchSize) break;
        after = Number(rows[rows.length - 1]!.id);
      }
    }
    return result;
  }

  private opens(stored: StoredField, field: { table: string; column: string }): boolean {
    try {
      this.encrypted.open(stored, field);
      return true;
    } catch {
      return false;
    }
  }

  private async sealRow(trx: Knex, table: string, row: SecretRow, columns: readonly string[]): Promise<void> {
    const values: Values<string> = {};
    for (const column of columns) values[column] = this.plaintext.open(row[column]!);
    const sealed = await this.seal(trx, table, values);
    await trx(table).where({ id: row.id }).update(sealed);
  }
}

/** Not keyward's format (which starts with a version byte below 0x20): UTF-8 text, or Trustpoint's base64. */
export function isPlaintext(stored: StoredField | null | undefined): stored is StoredField {
  if (stored === null || stored === undefined) return false;
  return typeof stored === 'string' || stored.length === 0 || stored[0]! >= 0x20;
}
