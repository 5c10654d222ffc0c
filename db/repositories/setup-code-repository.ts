import type { Knex } from 'knex';

const TABLE = 'web_setup_code';
/** One code per database at a time: the row's id. */
const ONLY = 1;

export interface StoredSetupCode {
  salt: Buffer;
  hash: Buffer;
  /** The hash's function and parameters, e.g. `scrypt:N=16384,r=8,p=1`. */
  kdf: string;
  createdAt: string;
  /** The node that printed it (host name and home). */
  createdBy: string;
  usedAt: string | null;
}

type Row = { salt: Buffer; hash: Buffer; kdf: string; created_at: string; created_by: string; used_at: string | null };

/** The one-time set-up code's hash (migration 013), shared by every process on the database. */
export class SetupCodeRepository {
  constructor(private readonly db: Knex) {}

  async find(): Promise<StoredSetupCode | null> {
    const row = (await this.db(TABLE).where({ id: ONLY }).first()) as Row | undefined;
    return row ? toRecord(row) : null;
  }

  /** False when another process stored a code first. */
  async create(code: Omit<StoredSetupCode, 'usedAt'>): Promise<boolean> {
    const inserted = await this.db(TABLE)
      .insert({ id: ONLY, ...toRow(code) })
      .onConflict('id')
      .ignore()
      .returning('id');
    return inserted.length > 0;
  }

  /** Replaces the code whose hash is `expected`; false when another process replaced it meanwhile. */
  async replace(expected: Buffer, code: Omit<StoredSetupCode, 'usedAt'>): Promise<boolean> {
    return (await this.db(TABLE).where({ id: ONLY, hash: expected }).update(toRow(code))) === 1;
  }

  /** Marks the code used, once: false when it was used already (another node, another browser). */
  async markUsed(hash: Buffer, at: string): Promise<boolean> {
    return (await this.db(TABLE).where({ id: ONLY, hash }).whereNull('used_at').update({ used_at: at })) === 1;
  }

  /** Deletes the code whose hash is `expected` (not one another process made meanwhile). */
  async deleteIf(expected: Buffer): Promise<void> {
    await this.db(TABLE).where({ id: ONLY, hash: expected }).delete();
  }

  /** The wizard is complete: no code is left to match. */
  async delete(): Promise<void> {
    await this.db(TABLE).delete();
  }
}

function toRow(code: Omit<StoredSetupCode, 'usedAt'>): Row {
  return { salt: code.salt, hash: code.hash, kdf: code.kdf, created_at: code.createdAt, created_by: code.createdBy, used_at: null };
}

function toRecord(row: Row): StoredSetupCode {
  return {
    salt: Buffer.from(row.salt),
    hash: Buffer.from(row.hash),
    kdf: row.kdf,
    createdAt: row.created_at,
    createdBy: row.created_by,
    usedAt: row.used_at ?? null,
  };
}
