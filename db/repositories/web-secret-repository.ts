import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { isKeyCustodyError } from '../../errors/key-custody-error';
import { now } from '../clock';
import { isPlaintext, SecretFields } from '../secret-fields';

const TABLE = 'web_secrets';

/** A web secret as one process can read it now. */
export type WebSecretReading =
  | { state: 'missing' }
  /** `sealed`: under the DEK (docs/formats.md §4); otherwise plaintext (software storage, or no DEK yet). */
  | { state: 'open'; value: string; stored: Buffer; sealed: boolean }
  /** Sealed under a DEK this process does not hold (not loaded yet, an outage, or a lost token). */
  | { state: 'unreadable'; stored: Buffer; reason: string };

/** 32 random bytes, hex: every web secret is a key of this kind. */
export function newWebSecretValue(): string {
  return randomBytes(32).toString('hex');
}

/**
 * Keys the web processes share (migration 013), by name: a secret column, so a value is sealed under
 * the DEK when one exists. Before it exists a value is stored in plaintext; the DEK's creation does not
 * seal such a value but replaces it (replacePlaintext), because a plaintext value may already sit in
 * a dump, a WAL or an old row version, and sealing it would keep that copy usable.
 */
export class WebSecretRepository {
  constructor(
    private readonly db: Knex,
    private readonly secrets: SecretFields,
  ) {}

  async read(name: string): Promise<WebSecretReading> {
    const row = await this.db(TABLE).where({ name }).first<{ value: Buffer | string } | undefined>('value');
    if (!row) return { state: 'missing' };
    const stored = Buffer.isBuffer(row.value) ? row.value : Buffer.from(row.value, 'utf8');
    if (isPlaintext(stored)) return { state: 'open', value: stored.toString('utf8'), stored, sealed: false };
    try {
      const { value } = await this.secrets.open(TABLE, { value: stored }, ['value'] as const);
      return { state: 'open', value: value!, stored, sealed: true };
    } catch (error) {
      if (!isKeyCustodyError(error)) throw error;
      return { state: 'unreadable', stored, reason: error.code };
    }
  }

  /** True when a value written now would be sealed: HSM storage with the DEK in this process. */
  async seals(trx: Knex = this.db): Promise<boolean> {
    return (await this.secrets.codec(trx)).encrypts && this.secrets.hasDek;
  }

  /** Stores the first value under this name; false when another process stored one first. */
  async create(name: string, value: string): Promise<boolean> {
    return this.db.transaction(async (trx) => {
      const stored = await this.sealOrPlain(trx, value);
      const inserted = await trx(TABLE).insert({ name, value: stored, created_at: now() }).onConflict('name').ignore().returning('id');
      return inserted.length > 0;
    });
  }

  /** Compare-and-swap on the stored bytes: false when another process changed the value meanwhile. */
  async replace(name: string, expected: Buffer, value: string): Promise<boolean> {
    return this.db.transaction(async (trx) => {
      const row = await trx(TABLE).where({ name }).first<{ value: Buffer } | undefined>('value');
      if (!row || !Buffer.from(row.value).equals(expected)) return false;
      const stored = await this.sealOrPlain(trx, value);
      await trx(TABLE).where({ name }).update({ value: stored, created_at: now() });
      return true;
    });
  }

  /**
   * Under HSM storage with the DEK loaded: every value still in plaintext is replaced by a new random
   * one, sealed. Runs where the DEK is created, before SecretFields.sealPlaintext() would seal the old
   * value as it is. Returns how many were replaced.
   */
  async replacePlaintext(): Promise<number> {
    return this.db.transaction(async (trx) => {
      if (!(await this.seals(trx))) return 0;
      let replaced = 0;
      for (const row of await trx<{ id: number; value: Buffer }>(TABLE).select('id', 'value')) {
        if (!isPlaintext(row.value)) continue;
        const sealed = await this.secrets.seal(trx, TABLE, { value: newWebSecretValue() });
        await trx(TABLE).where({ id: row.id }).update({ value: sealed.value, created_at: now() });
        replaced += 1;
      }
      return replaced;
    });
  }

  private async sealOrPlain(trx: Knex, value: string): Promise<Buffer> {
    if (!(await this.seals(trx))) return Buffer.from(value, 'utf8');
    const sealed = await this.secrets.seal(trx, TABLE, { value });
    return sealed.value as Buffer;
  }
}
