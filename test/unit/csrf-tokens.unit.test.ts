import type { Request, Response } from 'express';
import { createCsrf, CSRF_COOKIE, CsrfKeys } from '../../server/web/csrf';

// Counts csrf-csrf's HMACs (it calls crypto's createHmac for each token it signs or checks).
jest.mock('crypto', () => {
  const actual = jest.requireActual<typeof import('crypto')>('crypto');
  return { ...actual, createHmac: jest.fn(actual.createHmac) };
});
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hmacs = (require('crypto') as typeof import('crypto')).createHmac as unknown as jest.Mock;

/** The token a page's forms carry: the one the browser holds while it is valid, checked once per session and key set. */
describe('the CSRF token of a page', () => {
  let keys: string[];
  const key: CsrfKeys = {
    get current() {
      return keys;
    },
    refresh: async () => false,
  };
  const page = (sessionId: string, held?: string) => {
    const sent: string[] = [];
    const req = { method: 'GET', headers: {}, cookies: held === undefined ? {} : { [CSRF_COOKIE]: held }, keyward: { sessionId, session: null } } as unknown as Request;
    const res = { cookie: (name: string, value: string) => sent.push(`${name}=${value}`) } as unknown as Response;
    return { token: csrf.token(req, res), sent };
  };
  let csrf: ReturnType<typeof createCsrf>;

  beforeEach(() => {
    keys = ['a'.repeat(64)];
    csrf = createCsrf(key);
    hmacs.mockClear();
  });

  it('is the held one, checked once: a page opened again computes no HMAC', () => {
    const first = page('session-1');
    expect(first.sent).toEqual([`${CSRF_COOKIE}=${first.token}`]);
    hmacs.mockClear();
    expect(page('session-1', first.token)).toEqual({ token: first.token, sent: [] });
    expect(hmacs).toHaveBeenCalledTimes(1);
    expect(page('session-1', first.token)).toEqual({ token: first.token, sent: [] });
    expect(hmacs).toHaveBeenCalledTimes(1);
  });

  it("is a new one in a new cookie when the held one is another session's, or the key was loaded again", () => {
    const held = page('session-1').token;
    page('session-1', held);
    // Another session presenting it: refused, though it was found valid for session 1.
    const other = page('session-2', held);
    expect(other.token).not.toBe(held);
    expect(other.sent).toEqual([`${CSRF_COOKIE}=${other.token}`]);
    // The key replaced: the token checked before is checked again, and refused.
    keys = ['b'.repeat(64)];
    const replaced = page('session-1', held);
    expect(replaced.token).not.toBe(held);
    expect(replaced.sent).toHaveLength(1);
    // A key set loaded again with the same key (a new reading) checks again, and keeps a valid token.
    const current = replaced.token;
    keys = [...keys];
    hmacs.mockClear();
    expect(page('session-1', current)).toEqual({ token: current, sent: [] });
    expect(hmacs).toHaveBeenCalledTimes(1);
  });

  it('is refused when forged, whatever was checked before', () => {
    const held = page('session-1').token;
    page('session-1', held);
    const forged = `${'0'.repeat(64)}.${held.split('.')[1] ?? ''}`;
    expect(page('session-1', forged).token).not.toBe(forged);
  });
});
