import * as crypto from 'node:crypto';
import type { Request, Response } from 'express';
import { MemorySessionStore } from '../../server/web/session-store';
import { SESSION_COOKIE, SessionService } from '../../server/web/sessions';

// Counts the SHA-256 hashes of session ids (sessions.ts hashes each id with node:crypto's createHash).
jest.mock('node:crypto', () => {
  const actual = jest.requireActual<typeof import('node:crypto')>('node:crypto');
  return { ...actual, createHash: jest.fn(actual.createHash) };
});
const hashes = crypto.createHash as unknown as jest.Mock;

/** Session ids: the browser's cookie is hashed once per process while it is in use, and a logout forgets it. */
describe('a session id presented again', () => {
  const limits = { idleMs: 60 * 60_000, maxMs: 8 * 60 * 60_000 };
  let sessions: SessionService;

  const request = async (id?: string) => {
    let cookie: string | undefined;
    const req = { cookies: id === undefined ? {} : { [SESSION_COOKIE]: id } } as unknown as Request;
    const res = { cookie: (_name: string, value: string) => (cookie = value) } as unknown as Response;
    await new Promise<void>(
      (resolve, reject) => void sessions.middleware()(req, res, (error?: unknown) => (error ? reject(error instanceof Error ? error : new Error('the session middleware failed')) : resolve())),
    );
    return { req, res, cookie: () => cookie };
  };

  beforeEach(() => {
    sessions = new SessionService(new MemorySessionStore(), limits);
  });

  it('is hashed once while in use; the session a login made loads from it', async () => {
    const first = await request();
    await sessions.grant(first.req, first.res, { admin: { id: 1, username: 'admin' } });
    const id = first.cookie()!;
    hashes.mockClear();
    expect((await request(id)).req.keyward?.session?.adminUsername).toBe('admin');
    expect((await request(id)).req.keyward?.session?.adminUsername).toBe('admin');
    expect(hashes).toHaveBeenCalledTimes(1);
  });

  it('loads no session after a logout, and the id it ended is no longer kept', async () => {
    const first = await request();
    await sessions.grant(first.req, first.res, { admin: { id: 1, username: 'admin' } });
    const id = first.cookie()!;
    const page = await request(id);
    await sessions.end(page.req, page.res);
    hashes.mockClear();
    expect((await request(id)).req.keyward?.session).toBeNull();
    expect(hashes).toHaveBeenCalledTimes(1);
  });
});
