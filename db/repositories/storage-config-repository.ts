import type { Knex } from 'knex';
import { isStorageType, StorageType } from '../../hsm/storage-type';
import { now } from '../clock';
import { ConfigCache } from '../config-cache';
import type { StorageConfigRow, TokenConfigRow } from '../rows';

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
  constructor(
    readonly db: Knex,
    private readonly reader: Knex = db,
    private readonly cache: ConfigCache = new ConfigCache(),
  ) {}

  /** `trx`: inside a transaction, read through it (SQLite has one writer connection), never from the cache. */
  async storageType(trx?: Knex): Promise<StorageType | null> {
    if (trx) return this.readStorageType(trx);
    return this.cache.get('storageType', () => this.readStorageType(this.reader));
  }

  private async readStorageType(db: Knex): Promise<StorageType | null> {
    const row = await db<StorageConfigRow>('key_storage_config').where({ id: 1 }).first('storage_type');
    if (!row) return null;
    if (!isStorageType(row.storage_type)) throw new Error(`key_storage_config holds an unknown storage type "${row.storage_type}"`);
    return row.storage_type;
  }

  async setStorageType(type: StorageType, trx: Knex = this.db): Promise<void> {
    try {
      await trx('key_storage_config').insert({ id: 1, storage_type: type, updated_at: now() }).onConflict('id').merge();
    } finally {
      this.cache.invalidate();
    }
  }

  async token(): Promise<TokenConfigRecord | null> {
    const record = await this.cache.get('token', async () => {
      const row = await this.reader<TokenConfigRow>('pkcs11_token_config').where({ id: 1 }).first();
      return row ? tokenRecord(row) : null;
    });
    return record && { ...record };
  }

  async setToken(config: TokenConfigRecord): Promise<void> {
    try {
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
    } finally {
      this.cache.invalidate();
    }
  }
}

function tokenRecord(row: TokenConfigRow): TokenConfigRecord {
  return {
    hsmType: row.hsm_type as HsmType,
    modulePath: row.module_path,
    tokenLabel: row.token_label,
    kekLabel: row.kek_label,
    slot: row.slot === null ? null : Number(row.slot),
    pinSource: row.pin_source,
  };
}
