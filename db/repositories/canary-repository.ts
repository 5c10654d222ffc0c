import { createHash, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { now } from '../clock';
import type { SecretFields } from '../secret-fields';
import type { CustodyCanaryRow } from '../rows';

export interface CanaryCheck {
  ok: boolean;
  message: string;
}

/** The custody canary (migration 005): one random secret whose opening proves the DEK is the right one. */
export class CanaryRepository {
  constructor(
    private readonly db: Knex,
    private readonly secrets: SecretFields,
  ) {}

  /** Creates the canary under the current storage if there is none; running it again changes nothing. */
  async ensure(): Promise<void> {
    await this.db.transaction(async (trx) => {
      if (await trx('custody_canary').first('id')) return;
      const plaintext = `keyward-canary-${randomBytes(16).toString('hex')}`;
      const sealed = await this.secrets.seal(trx, 'custody_canary', { value: plaintext });
      await trx('custody_canary').insert({ value: sealed.value, sha256: sha256(plaintext), created_at: now() });
    });
  }

  /** A new canary under the storage chosen now (the wizard's storage step, the DEK's creation). */
  async reset(): Promise<void> {
    await this.db('custody_canary').delete();
    await this.ensure();
  }

  async check(): Promise<CanaryCheck> {
    const row = await this.db<CustodyCanaryRow>('custody_canary').orderBy('id').first();
    if (!row) return { ok: false, message: 'there is no custody canary in this database' };
    try {
      const opened = await this.secrets.open('custody_canary', row, ['value'] as const);
      return sha256(opened.value!) === row.sha256 ? { ok: true, message: 'the custody canary opens to its recorded value' } : { ok: false, message: 'the custody canary opened to a different value' };
    } catch (error) {
      return { ok: false, message: `the custody canary does not open: ${(error as Error).message}` };
    }
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
