import type { Knex } from 'knex';
import type { WrapMechanism, WrappedKey } from '../../hsm/key-wrapper';
import { now } from '../clock';
import { ConfigCache } from '../config-cache';

/** The second token as configured: where it is, the KEK on it, where its PIN is read; never the PIN. */
export interface SecondKekConfig {
  modulePath: string;
  tokenLabel: string;
  kekLabel: string;
  /** Hex CKA_ID of the KEK on the second token. */
  kekId: string;
  /** "secrets:NAME", "file:PATH" or "env:NAME". */
  pinSource: string;
  createdAt: string;
}

export type KekName = 'primary' | 'second';

export interface KekHealth {
  kek: KekName;
  healthy: boolean;
  /** When it last became healthy or unhealthy. */
  since: string;
  problem: string | null;
}

interface ConfigRow {
  id: number;
  module_path: string;
  token_label: string;
  kek_label: string;
  kek_id: string;
  pin_source: string;
  created_at: string;
}

interface WrapRow {
  kek: string;
  dek_key_id: string;
  kek_label: string;
  kek_id: string;
  wrap_mechanism: string;
  wrapped_dek: Buffer;
}

interface HealthRow {
  kek: string;
  healthy: boolean | number;
  since: string;
  problem: string | null;
}

const SECOND = 'second';

/**
 * The second KEK's configuration, its wrap of every live DEK (kek_wraps), and each KEK's health as
 * the last probe saw it (migration 016). Every table is read as absent before the migration ran:
 * BOOT probes a database whose migrations may not have run yet. The configuration and the health
 * change only inside lifecycle steps, so they are kept per lifecycle version (the status page reads
 * them per request).
 */
export class SecondKekRepository {
  constructor(
    private readonly db: Knex,
    private readonly reader: Knex = db,
    private readonly cache: ConfigCache = new ConfigCache(),
  ) {}

  config(): Promise<SecondKekConfig | null> {
    return this.cache.get('secondKekConfig', () => this.readConfig());
  }

  private async readConfig(): Promise<SecondKekConfig | null> {
    if (!(await this.reader.schema.hasTable('second_kek_config'))) return null;
    const row = await this.reader<ConfigRow>('second_kek_config').where({ id: 1 }).first();
    return row ? { modulePath: row.module_path, tokenLabel: row.token_label, kekLabel: row.kek_label, kekId: row.kek_id, pinSource: row.pin_source, createdAt: row.created_at } : null;
  }

  /** The second KEK's wrap of each DEK, by DEK key id. */
  async wraps(): Promise<Map<string, WrappedKey>> {
    if (!(await this.reader.schema.hasTable('kek_wraps'))) return new Map();
    const rows = await this.reader<WrapRow>('kek_wraps').where({ kek: SECOND });
    return new Map(rows.map((row) => [row.dek_key_id, { mechanism: row.wrap_mechanism as WrapMechanism, kek: { label: row.kek_label, id: row.kek_id }, blob: Buffer.from(row.wrapped_dek) }]));
  }

  /** The configuration and a wrap of each DEK, in one transaction; wraps of other DEKs are left as they are. */
  async save(config: Omit<SecondKekConfig, 'createdAt'>, wraps: ReadonlyMap<string, WrappedKey>): Promise<void> {
    await this.db.transaction(async (trx) => {
      const at = now();
      await trx('second_kek_config')
        .insert({ id: 1, module_path: config.modulePath, token_label: config.tokenLabel, kek_label: config.kekLabel, kek_id: config.kekId, pin_source: config.pinSource, created_at: at })
        .onConflict('id')
        .merge();
      await putWraps(trx, config.tokenLabel, wraps);
    });
    this.cache.invalidate();
  }

  /** Wraps of DEKs added since (a DEK rotation), under the configured KEK. */
  async putWraps(wraps: ReadonlyMap<string, WrappedKey>): Promise<void> {
    const config = await this.config();
    if (!config) throw new Error('no second KEK is configured');
    await this.db.transaction((trx) => putWraps(trx, config.tokenLabel, wraps));
  }

  /** Drops the wraps of retired DEKs; inside the retirement's transaction when given one. */
  async deleteWraps(dekKeyIds: readonly string[], trx: Knex = this.db): Promise<void> {
    if (!(await trx.schema.hasTable('kek_wraps'))) return;
    await trx('kek_wraps')
      .whereIn('dek_key_id', [...dekKeyIds])
      .delete();
  }

  /** The configuration, every wrap under the second KEK and the health rows, in one transaction. */
  async remove(): Promise<void> {
    await this.db.transaction(async (trx) => {
      await trx('kek_wraps').where({ kek: SECOND }).delete();
      await trx('second_kek_config').delete();
      // Without a second KEK there is nothing to tell the primary's health from: both rows go.
      await trx('kek_health').delete();
    });
    this.cache.invalidate();
  }

  health(): Promise<KekHealth[]> {
    return this.cache.get('kekHealth', () => this.readHealth());
  }

  private async readHealth(): Promise<KekHealth[]> {
    if (!(await this.reader.schema.hasTable('kek_health'))) return [];
    const rows = await this.reader<HealthRow>('kek_health').orderBy('kek', 'asc');
    return rows.map((row) => ({ kek: row.kek as KekName, healthy: Boolean(row.healthy), since: row.since, problem: row.problem }));
  }

  /** Records what a probe saw; `since` moves only when the KEK turns healthy or unhealthy. */
  async recordHealth(kek: KekName, healthy: boolean, problem: string | null, at: string = now()): Promise<void> {
    if (!(await this.db.schema.hasTable('kek_health'))) return;
    await this.db.transaction(async (trx) => {
      const row = await trx<HealthRow>('kek_health').where({ kek }).first();
      if (!row) await trx('kek_health').insert({ kek, healthy, since: at, problem });
      else
        await trx('kek_health')
          .where({ kek })
          .update({ healthy, problem, since: Boolean(row.healthy) === healthy ? row.since : at });
    });
    this.cache.invalidate();
  }
}

async function putWraps(trx: Knex, tokenLabel: string, wraps: ReadonlyMap<string, WrappedKey>): Promise<void> {
  const at = now();
  for (const [dekKeyId, wrapped] of wraps) {
    await trx('kek_wraps')
      .insert({
        dek_key_id: dekKeyId,
        kek: SECOND,
        token_label: tokenLabel,
        kek_label: wrapped.kek.label,
        kek_id: wrapped.kek.id,
        wrap_mechanism: wrapped.mechanism,
        wrapped_dek: wrapped.blob,
        created_at: at,
      })
      .onConflict(['dek_key_id', 'kek'])
      .merge();
  }
}
