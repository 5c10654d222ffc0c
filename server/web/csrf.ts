import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { doubleCsrf } from 'csrf-csrf';
import type { Request, RequestHandler, Response } from 'express';

export const CSRF_COOKIE = '__Host-keyward-csrf';
export const CSRF_FIELD = '_csrf';

export interface Csrf {
  /** Checks every POST (and any other unsafe method); a failure is a 403 that changes nothing. */
  protect: RequestHandler;
  /** The token for the forms of this response (also sets its cookie). */
  token(req: Request, res: Response): string;
}

/**
 * The HMAC key of the CSRF tokens: random, 0600 in the secrets directory, made on first start. A
 * file rather than a per-process key so that a form loaded before a restart still submits.
 */
export function loadCsrfKey(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const key = randomBytes(32).toString('hex');
  try {
    writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
    return key;
  } catch (error) {
    // Another process made it first: use that one.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(file, 'utf8').trim();
    throw error;
  }
}

/**
 * csrf-csrf's signed double-submit tokens, bound to the session id: the token in the form must equal
 * the one in an HttpOnly __Host- cookie and carry an HMAC over this session's id.
 */
export function createCsrf(key: string): Csrf {
  const { doubleCsrfProtection, generateCsrfToken } = doubleCsrf({
    getSecret: () => key,
    getSessionIdentifier: (req) => req.keyward?.sessionId ?? '',
    cookieName: CSRF_COOKIE,
    cookieOptions: { sameSite: 'strict', secure: true, httpOnly: true, path: '/' },
    getCsrfTokenFromRequest: (req) => {
      const body = req.body as Record<string, unknown> | undefined;
      const fromBody = body && typeof body === 'object' ? body[CSRF_FIELD] : undefined;
      return typeof fromBody === 'string' ? fromBody : req.headers['x-csrf-token'];
    },
  });
  return { protect: doubleCsrfProtection, token: (req, res) => generateCsrfToken(req, res) };
}
