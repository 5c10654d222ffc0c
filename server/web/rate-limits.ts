import type { RequestHandler } from 'express';
import { rateLimit, type ClientRateLimitInfo, type IncrementResponse, type Options, type Store } from 'express-rate-limit';
import type { RateLimitRepository } from '../../db/store';
import { TooManyAttemptsError } from './web-errors';

export interface RateLimits {
  setupCode: RequestHandler;
  login: RequestHandler;
  backupPassword: RequestHandler;
}

/**
 * express-rate-limit's counters in the database (web_rate_limits), so that every node counts against
 * one limit. Counters whose window has ended are deleted at most once per window.
 */
export class DatabaseRateLimitStore implements Store {
  readonly localKeys = false;
  private windowMs = 60_000;
  private lastPurge = 0;

  constructor(
    private readonly counters: RateLimitRepository,
    readonly prefix: string,
    private readonly clock: () => number = Date.now,
  ) {}

  init(options: Options): void {
    this.windowMs = options.windowMs;
  }

  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    const count = await this.counters.get(this.prefix + key, this.clock());
    return count ? { totalHits: count.hits, resetTime: new Date(count.resetAt) } : undefined;
  }

  async increment(key: string): Promise<IncrementResponse> {
    const now = this.clock();
    if (now - this.lastPurge >= this.windowMs) {
      this.lastPurge = now;
      await this.counters.purgeExpired(now);
    }
    const count = await this.counters.increment(this.prefix + key, this.windowMs, now);
    return { totalHits: count.hits, resetTime: new Date(count.resetAt) };
  }

  async decrement(key: string): Promise<void> {
    await this.counters.decrement(this.prefix + key, this.clock());
  }

  async resetKey(key: string): Promise<void> {
    await this.counters.reset(this.prefix + key);
  }
}

/**
 * Per client address, failed attempts only (a redirect after success does not count), counted in the
 * database across nodes. The backup password has its own persisted lockout in the machine; this
 * limit also stops a flood of Argon2 derivations (64 MiB each) from one address. Admin logins are
 * also limited per account (admin_users, migration 008), in the database as well.
 */
export function createRateLimits(counters: RateLimitRepository): RateLimits {
  const limiter = (name: string, what: string, limit: number, windowMinutes: number): RequestHandler =>
    rateLimit({
      windowMs: windowMinutes * 60_000,
      limit,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      skipSuccessfulRequests: true,
      store: new DatabaseRateLimitStore(counters, `${name}:`),
      handler: (_req, res, next) => {
        const retryAfter = Number(res.getHeader('Retry-After') ?? windowMinutes * 60);
        next(new TooManyAttemptsError(what, retryAfter));
      },
    });
  return {
    setupCode: limiter('setup-code', 'set-up code', 10, 15),
    login: limiter('login', 'login', 10, 15),
    backupPassword: limiter('backup-password', 'backup password', 10, 15),
  };
}
