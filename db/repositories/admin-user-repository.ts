import type { Knex } from 'knex';
import { now } from '../clock';
import { type AdminUserRow, returnedId } from '../rows';

export interface AdminUser {
  id: number;
  username: string;
  passwordHash: string;
  createdAt: string;
  lastLoginAt: string | null;
  /** Failed logins since the last successful one (migration 008). */
  failedLogins: number;
  /** ISO-8601 UTC; no login is accepted for this account before it, not even the right password. */
  lockedUntil: string | null;
}

/** The per-account login limit: after this many failures in a row, each further one locks longer. */
export const LOGIN_FAILURES_BEFORE_LOCK = 10;
const FIRST_LOCK_MS = 60_000;
const LONGEST_LOCK_MS = 60 * 60_000;

/** How long an account is locked after `failures` failed logins in a row: 0, then 1 min, 2, 4 … 60 min. */
export function loginLockMs(failures: number): number {
  if (failures < LOGIN_FAILURES_BEFORE_LOCK) return 0;
  return Math.min(LONGEST_LOCK_MS, FIRST_LOCK_MS * 2 ** Math.min(failures - LOGIN_FAILURES_BEFORE_LOCK, 16));
}

/** Administrators; the password is only ever here as an Argon2id hash. */
export class AdminUserRepository {
  constructor(private readonly db: Knex) {}

  async create(username: string, passwordHash: string): Promise<number> {
    return returnedId(await this.db('admin_users').insert({ username, password_hash: passwordHash, created_at: now() }).returning('id'));
  }

  async findByUsername(username: string): Promise<AdminUser | null> {
    const row = await this.db<AdminUserRow>('admin_users').where({ username }).first();
    return row ? toUser(row) : null;
  }

  async count(): Promise<number> {
    const [{ n }] = (await this.db('admin_users').count({ n: '*' })) as [{ n: number | string }];
    return Number(n);
  }

  async recordLogin(id: number): Promise<void> {
    await this.db('admin_users').where({ id }).update({ last_login_at: now(), failed_logins: 0, locked_until: null });
  }

  /** Counts a failed login (atomically, so that concurrent guesses all count); returns the lock it set. */
  async recordFailedLogin(id: number, at: Date = new Date()): Promise<{ failedLogins: number; lockedUntil: string | null }> {
    return this.db.transaction(async (trx) => {
      await trx('admin_users').where({ id }).increment('failed_logins', 1);
      const row = await trx<AdminUserRow>('admin_users').where({ id }).first('failed_logins');
      const failedLogins = Number(row?.failed_logins ?? 0);
      const lockMs = loginLockMs(failedLogins);
      const lockedUntil = lockMs > 0 ? new Date(at.getTime() + lockMs).toISOString() : null;
      if (lockedUntil) await trx('admin_users').where({ id }).update({ locked_until: lockedUntil });
      return { failedLogins, lockedUntil };
    });
  }
}

function toUser(row: AdminUserRow): AdminUser {
  return {
    id: Number(row.id),
    username: row.username,
    passwordHash: row.password_hash,
    createdAt: row.created_at,
    lastLoginAt: row.last_login_at ?? null,
    failedLogins: Number(row.failed_logins ?? 0),
    lockedUntil: row.locked_until ?? null,
  };
}
