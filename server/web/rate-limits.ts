import type { RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';
import { TooManyAttemptsError } from './web-errors';

export interface RateLimits {
  setupCode: RequestHandler;
  login: RequestHandler;
  backupPassword: RequestHandler;
}

/**
 * Per client address, failed attempts only (a redirect after success does not count). The backup
 * password has its own persisted lockout in the machine; this limit also stops a flood of Argon2
 * derivations (64 MiB each) from one address.
 */
export function createRateLimits(): RateLimits {
  const limiter = (what: string, limit: number, windowMinutes: number): RequestHandler =>
    rateLimit({
      windowMs: windowMinutes * 60_000,
      limit,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      skipSuccessfulRequests: true,
      handler: (_req, res, next) => {
        const retryAfter = Number(res.getHeader('Retry-After') ?? windowMinutes * 60);
        next(new TooManyAttemptsError(what, retryAfter));
      },
    });
  return {
    setupCode: limiter('set-up code', 10, 15),
    login: limiter('login', 10, 15),
    backupPassword: limiter('backup password', 10, 15),
  };
}
