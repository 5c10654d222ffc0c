import type { Knex } from 'knex';
import { isPostgres, rawRows } from '../database';
import { createBootLeaseTable } from '../migrations/012_boot_lease';

/** The lease row as the database has it; times in milliseconds on the database's clock. */
export interface BootLeaseRow {
  holder: string | null;
  host: string | null;
  pid: number | null;
  expiresAt: number;
  /** When a BOOT last released the lease after deciding (0: never). */
  decidedAt: number;
  /** The host:pid of the process whose BOOT that was. */
  decidedBy: string | null;
  /** The database's clock when the row was read. */
  now: number;
}

export interface LeaseClaim {
  holder: string;
  host: string;
  pid: number;
}

/**
 * The BOOT lease (migration 012). Every statement is one atomic compare-and-set on the row, and every
 * time is the database's: SQLite and PostgreSQL alike, with no clock agreement between hosts.
 */
export class BootLeaseRepository {
  constructor(private readonly db: Knex) {}

  private get nowSql(): string {
    return isPostgres(this.db) ? '(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint' : "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
  }

  async ensureTable(): Promise<void> {
    await createBootLeaseTable(this.db);
  }

  /** The database's clock, in milliseconds. */
  async now(): Promise<number> {
    const [row] = await rawRows<{ now: unknown }>(this.db, `SELECT ${this.nowSql} AS now`);
    return Number(row!.now);
  }

  async read(deployment: string): Promise<BootLeaseRow | null> {
    const [row] = await rawRows<Record<string, unknown>>(this.db, `SELECT holder, host, pid, expires_at, decided_at, decided_by, ${this.nowSql} AS now FROM boot_lease WHERE deployment = ?`, [
      deployment,
    ]);
    if (!row) return null;
    return {
      holder: (row.holder as string | null) ?? null,
      host: (row.host as string | null) ?? null,
      pid: row.pid === null || row.pid === undefined ? null : Number(row.pid),
      expiresAt: Number(row.expires_at),
      decidedAt: Number(row.decided_at),
      decidedBy: (row.decided_by as string | null) ?? null,
      now: Number(row.now),
    };
  }

  /**
   * Takes the lease if it is free, expired, already ours, or held by `displacing` (a holder the caller
   * knows to be dead). True when `claim.holder` holds it afterwards.
   */
  async acquire(deployment: string, claim: LeaseClaim, ttlMs: number, displacing: string | null = null): Promise<boolean> {
    const now = this.nowSql;
    await this.db.raw(
      `INSERT INTO boot_lease (deployment, holder, host, pid, expires_at, decided_at) VALUES (?, ?, ?, ?, ${now} + ?, 0)
       ON CONFLICT (deployment) DO UPDATE SET holder = excluded.holder, host = excluded.host, pid = excluded.pid, expires_at = excluded.expires_at
       WHERE boot_lease.holder IS NULL OR boot_lease.expires_at < ${now} OR boot_lease.holder = excluded.holder OR boot_lease.holder = ?`,
      [deployment, claim.holder, claim.host, claim.pid, ttlMs, displacing ?? ''],
    );
    return (await this.read(deployment))?.holder === claim.holder;
  }

  /** Extends the holder's lease; false when it is no longer the holder (it expired and was taken). */
  async renew(deployment: string, holder: string, ttlMs: number): Promise<boolean> {
    const changed = await this.db('boot_lease')
      .where({ deployment, holder })
      .update({ expires_at: this.db.raw(`${this.nowSql} + ?`, [ttlMs]) });
    return Number(changed) === 1;
  }

  /** Gives the lease up; `decidedBy` (host:pid): a BOOT of that process ran to its end under it. */
  async release(deployment: string, holder: string, decidedBy: string | null): Promise<void> {
    await this.db('boot_lease')
      .where({ deployment, holder })
      .update({ holder: null, host: null, pid: null, expires_at: 0, ...(decidedBy ? { decided_at: this.db.raw(this.nowSql), decided_by: decidedBy } : {}) });
  }
}
