import { createHash, randomBytes } from 'node:crypto';
import type { CookieOptions, NextFunction, Request, RequestHandler, Response } from 'express';
import type { WebSessionRecord } from '../../db/repositories/web-session-repository';
import { contextOf } from './request-context';
import type { SessionStore } from './session-store';

export const SESSION_COOKIE = '__Host-keyward-session';
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;
/** A session's last-seen time is written at most this often: not one database write per request. */
const TOUCH_EVERY_MS = 60_000;

// __Host-: Secure, Path=/, no Domain, so no other site or subdomain can set or read it.
const COOKIE_OPTIONS: CookieOptions = { httpOnly: true, secure: true, sameSite: 'strict', path: '/' };

export interface SessionLimits {
  idleMs: number;
  maxMs: number;
}

export interface Grant {
  setup?: boolean;
  admin?: { id: number; username: string };
}

const hashId = (id: string): string => createHash('sha256').update(id).digest('hex');
const newId = (): string => randomBytes(32).toString('base64url');
/** At most this many ids' hashes are kept (then the record starts afresh). */
const KEPT_HASHES = 10_000;

/**
 * Sessions kept on the server; the browser holds only a random id in an HttpOnly, Secure,
 * SameSite=Strict cookie, and the server only its SHA-256. Every visitor gets an id (the CSRF
 * tokens are bound to it); a privilege (the set-up code, an admin login) always comes with a new id,
 * so an id planted before cannot be raised.
 */
export class SessionService {
  constructor(
    private readonly store: SessionStore,
    private readonly limits: SessionLimits,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /** Ids presented lately and their SHA-256: a page opened again hashes no id. An ended session's goes. */
  private readonly hashes = new Map<string, string>();

  get persistent(): boolean {
    return this.store.persistent;
  }

  middleware(): RequestHandler {
    return async (req: Request, res: Response, next: NextFunction) => {
      let id = req.cookies?.[SESSION_COOKIE] as unknown;
      if (typeof id !== 'string' || !SESSION_ID.test(id)) {
        id = newId();
        res.cookie(SESSION_COOKIE, id, COOKIE_OPTIONS);
      }
      req.keyward = { sessionId: id as string, session: await this.load(id as string) };
      next();
    };
  }

  /** Raises the request's session to `grant` (keeping what it had) under a new id. */
  async grant(req: Request, res: Response, grant: Grant): Promise<WebSessionRecord> {
    const context = contextOf(req);
    const previous = context.session;
    const now = this.clock();
    const id = newId();
    const adminUserId = grant.admin?.id ?? previous?.adminUserId ?? null;
    const adminUsername = grant.admin?.username ?? previous?.adminUsername ?? null;
    const record = {
      idHash: hashId(id),
      setupAuthorized: Boolean(grant.setup || previous?.setupAuthorized),
      adminUserId,
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + this.limits.maxMs).toISOString(),
    };
    await this.store.create(record, adminUsername);
    if (previous) await this.store.delete(previous.idHash);
    this.hashes.delete(context.sessionId);
    res.cookie(SESSION_COOKIE, id, COOKIE_OPTIONS);
    const session: WebSessionRecord = { ...record, summaryOf: null, adminUsername, lastSeenAt: record.createdAt };
    req.keyward = { sessionId: id, session };
    return session;
  }

  /**
   * The session that finished a set-up or recovery may see its summary (`completedAt` names it): under
   * a new id, keeping an administrator's login, without the set-up authorization the completion ends.
   */
  async passSummary(req: Request, res: Response, completedAt: string): Promise<void> {
    const previous = contextOf(req).session;
    const now = this.clock();
    const id = newId();
    const record = {
      idHash: hashId(id),
      setupAuthorized: false,
      adminUserId: previous?.adminUserId ?? null,
      summaryOf: completedAt,
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + this.limits.maxMs).toISOString(),
    };
    const adminUsername = previous?.adminUsername ?? null;
    await this.store.create(record, adminUsername);
    if (previous) await this.store.delete(previous.idHash);
    this.hashes.delete(contextOf(req).sessionId);
    res.cookie(SESSION_COOKIE, id, COOKIE_OPTIONS);
    req.keyward = { sessionId: id, session: { ...record, adminUsername, lastSeenAt: record.createdAt } };
  }

  /** Logs out: the row is deleted and the browser gets a fresh anonymous id. */
  async end(req: Request, res: Response): Promise<void> {
    const context = contextOf(req);
    if (context.session) await this.store.delete(context.session.idHash);
    this.hashes.delete(context.sessionId);
    const id = newId();
    res.cookie(SESSION_COOKIE, id, COOKIE_OPTIONS);
    req.keyward = { sessionId: id, session: null };
  }

  /** Ends every session (a restored store brings another installation's sessions). */
  endAll(): Promise<number> {
    return this.store.deleteAll();
  }

  /** The lifecycle moved (a restore, a completed wizard, on any node): sessions are read afresh. */
  forgetRecent(): void {
    this.store.forgetRecent?.();
  }

  revokeSetupAuthorizations(): Promise<number> {
    return this.store.revokeSetupAuthorizations();
  }

  purgeExpired(): Promise<number> {
    const now = this.clock();
    return this.store.deleteExpired(now.toISOString(), new Date(now.getTime() - this.limits.idleMs).toISOString());
  }

  private hashOf(id: string): string {
    let hash = this.hashes.get(id);
    if (hash === undefined) {
      if (this.hashes.size >= KEPT_HASHES) this.hashes.clear();
      hash = hashId(id);
      this.hashes.set(id, hash);
    }
    return hash;
  }

  private async load(id: string): Promise<WebSessionRecord | null> {
    const idHash = this.hashOf(id);
    const record = await this.store.find(idHash);
    if (!record) return null;
    const now = this.clock();
    const idle = now.getTime() - Date.parse(record.lastSeenAt);
    if (Date.parse(record.expiresAt) <= now.getTime() || idle > this.limits.idleMs) {
      await this.store.delete(idHash);
      return null;
    }
    if (idle > TOUCH_EVERY_MS) await this.store.touch(idHash, now.toISOString());
    return record;
  }
}
