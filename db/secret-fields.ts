import type { Knex } from 'knex';
import { DekKeyring } from '../hsm/dek-keyring';
import { EncryptedFieldCodec, FieldCodec, PlaintextFieldCodec, StoredField } from '../hsm/field-codec';
import { isHsmStorage } from '../hsm/storage-type';
import type { KeyMaterialRepository } from './repositories/key-material-repository';
import type { StorageConfigRepository } from './repositories/storage-config-repository';

type Values<K extends string> = Record<K, string | null>;
type Stored<K extends string> = Record<K, StoredField | null>;

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

  async codec(trx?: Knex): Promise<FieldCodec> {
    return isHsmStorage(await this.storage.storageType(trx)) ? this.encrypted : this.plaintext;
  }

  async seal<K extends string>(trx: Knex, table: string, values: Values<K>): Promise<Stored<K>> {
    const codec = await this.codec(trx);
    const sealed = {} as Stored<K>;
    let encryptions = 0;
    for (const column of Object.keys(values) as K[]) {
      const value = values[column];
      sealed[column] = value === null ? null : codec.seal(value, { table, column });
      if (value !== null && codec.encrypts) encryptions += 1;
    }
    if (encryptions > 0) await this.keyMaterial.addEncryptions(this.keyring.current!, encryptions, trx);
    return sealed;
  }

  async open<K extends string>(table: string, row: Stored<K>, columns: readonly K[]): Promise<Values<K>> {
    const codec = await this.codec();
    const opened = {} as Values<K>;
    for (const column of columns) {
      const value = row[column];
      opened[column] = value === null || value === undefined ? null : codec.open(value, { table, column });
    }
    return opened;
  }
}
