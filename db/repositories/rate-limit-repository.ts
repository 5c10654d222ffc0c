import type { Knex } from 'knex';

export interface RateLimitCount {
  hits: number;
  /** Milliseconds since the epoch at which the window ends and the count starts again. */
  resetAt: number;
}

type Row = { hits: number | string; reset_at: number | string };

/**
 * Failed-attempt counters (migration 013) shared by every process on the database: one row per limit
 * and client, counted in one statement so that attempts on several nodes at once all count.
 */
export class RateLimitRepository {
  constructor(private readonly db: Knex) {}

  /** Counts one hit; a window that has ended starts again at 1. */
  async increment(key: string, windowMs: number, nowMs: number): Promise<RateLimitCount> {
    // Both engines read the old row in every SET expression; `excluded` is the row the insert offered.
    const result: unknown = await this.db.raw(
      `INSERT INTO web_rate_limits ("key", hits, reset_at) VALUES (?, 1, ?)
       ON CONFLICT ("key") DO UPDATE SET
         hits = CASE WHEN web_rate_limits.reset_at <= ? THEN 1 ELSE web_rate_limits.hits + 1 END,
         reset_at = CASE WHEN web_rate_limits.reset_at <= ? THEN excluded.reset_at ELSE web_rate_limits.reset_at END
       RETURNING hits, reset_at`,
      [key, nowMs + windowMs, nowMs, nowMs],
    );
    const rows = (Array.isArray(result) ? result : (result as { rows: Row[] }).rows) as Row[];
    return toCount(rows[0]!);
  }

  /** Takes back one hit (a request that turned out to succeed), never below zero. */
  async decrement(key: string, nowMs: number): Promise<void> {
    await this.db('web_rate_limits').where({ key }).andWhere('reset_at', '>', nowMs).andWhere('hits', '>', 0).decrement('hits', 1);
  }

  async get(key: string, nowMs: number): Promise<RateLimitCount | null> {
    const row = await this.db('web_rate_limits').where({ key }).andWhere('reset_at', '>', nowMs).first<Row | undefined>('hits', 'reset_at');
    return row ? toCount(row) : null;
  }

  async reset(key: string): Promise<void> {
    await this.db('web_rate_limits').where({ key }).delete();
  }

  /** Deletes the counters whose window has ended. */
  async purgeExpired(nowMs: number): Promise<number> {
    return this.db('web_rate_limits').where('reset_at', '<=', nowMs).delete();
  }
}

function toCount(row: Row): RateLimitCount {
  return { hits: Number(row.hits), resetAt: Number(row.reset_at) };
}
