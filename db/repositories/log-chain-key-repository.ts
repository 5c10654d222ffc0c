import type { Knex } from 'knex';
import { now } from '../clock';
import type { SecretFields } from '../secret-fields';

/**
 * The transition-log chain keys of retired DEKs (docs/audit-log.md): a retired DEK's bytes are
 * wiped, but the rows it keyed must still verify, so its derived chain key is kept, sealed under the
 * live keyset like any secret value (a later rotation re-encrypts it too).
 */
export class LogChainKeyRepository {
  constructor(
    private readonly reader: Knex,
    private readonly secrets: SecretFields,
  ) {}

  /** Inside the retirement's transaction; keeping a key twice keeps the first. */
  async keep(trx: Knex, chainKey: string, key: Buffer): Promise<void> {
    if (await trx('log_chain_keys').where({ chain_key: chainKey }).first('id')) return;
    const sealed = await this.secrets.seal(trx, 'log_chain_keys', { sealed_key: key.toString('base64') });
    await trx('log_chain_keys').insert({ chain_key: chainKey, sealed_key: sealed.sealed_key, created_at: now() });
  }

  /** Every kept chain key by its name ("dek:<key id>"), opened with the keyset this process holds. */
  async all(): Promise<Map<string, Buffer>> {
    const keys = new Map<string, Buffer>();
    for (const row of await this.reader<{ chain_key: string; sealed_key: Buffer }>('log_chain_keys').select('chain_key', 'sealed_key')) {
      const { sealed_key } = await this.secrets.open('log_chain_keys', row, ['sealed_key']);
      keys.set(row.chain_key, Buffer.from(sealed_key!, 'base64'));
    }
    return keys;
  }
}
