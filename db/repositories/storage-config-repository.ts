import type { Knex } from 'knex';
import { isStorageType, StorageType } from '../../hsm/storage-type';
import { now } from '../clock';

export type HsmType = 'softhsm' | 'physical';

export interface TokenConfigRecord {
  hsmType: HsmType;
  modulePath: string;
  tokenLabel: string;
  kekLabel: string;
  slot: number | null;
  /** "file:PATH" or "env:NAME": where the user PIN is read from; never the PIN. */
  pinSource: string;
}

/** The chosen crypto storage and the PKCS#11 token it uses. */
export class StorageConfigRepository {
  constructor(readonly db: Knex) {}

  /** `trx`: inside a transaction, read through it (SQLite has one connection). */
  async storageType(trx: Knex = this.db): Promise<StorageType | null> {
    const row = await trx('key_storage_config').where({ id: 1 }).first('storage_type');
    if (!row) return null;
    if (!isStorageType(row.storage_type)) throw new Error(`key_storage_config holds an unknown storage type "${row.storage_type}"`);
    return row.storage_type;
  }

  async setStorageType(type: StorageType, trx: Knex = this.db): Promise<void> {
    await trx('key_storage_config').insert({ id: 1, storage_type: type, updated_at: now() }).onConflict('id').merge();
  }

  async token(): Promise<TokenConfigRecord | null> {
    const row = await this.db('pkcs11_token_config').where({ id: 1 }).first();
    if (!row) return null;
    return {
      hsmType: row.hsm_type,
      modulePath: row.module_path,
      tokenLabel: row.token_label,
      kekLabel: row.kek_label,
      slot: row.slot === null ? null : Number(row.slot),
      pinSource: row.pin_source,
    };
  }

  async setToken(config: TokenConfigRecord): Promise<void> {
    await this.db('pkcs11_token_config')
      .insert({
        id: 1,
        hsm_type: config.hsmType,
        module_path: config.modulePath,
        token_label: config.tokenLabel,
        kek_label: config.kekLabel,
        slot: config.slot,
        pin_source: config.pinSource,
        updated_at: now(),
      })
      .onConflict('id')
      .merge();
  }
}
