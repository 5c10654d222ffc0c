import type { NewWebSession, WebSessionRecord, WebSessionRepository } from '../../db/repositories/web-session-repository';

/** Where sessions are kept: the web_sessions table, or memory when the table does not exist yet. */
export interface SessionStore {
  readonly persistent: boolean;
  create(session: NewWebSession, adminUsername: string | null): Promise<void>;
  find(idHash: string): Promise<WebSessionRecord | null>;
  touch(idHash: string, at: string): Promise<void>;
  delete(idHash: string): Promise<void>;
  revokeSetupAuthorizations(): Promise<number>;
  deleteExpired(now: string, idleBefore: string): Promise<number>;
  deleteAll(): Promise<number>;
  /** Sessions read earlier are read again (another process may have ended them). */
  forgetRecent?(): void;
}

/**
 * For a database whose schema predates web_sessions at the same keyward version (the migration runs
 * with the next version's BOOT): sessions work, but end with the process.
 */
export class MemorySessionStore implements SessionStore {
  readonly persistent = false;
  private readonly sessions = new Map<string, WebSessionRecord>();

  async create(session: NewWebSession, adminUsername: string | null): Promise<void> {
    this.sessions.set(session.idHash, { ...session, summaryOf: session.summaryOf ?? null, adminUsername, lastSeenAt: session.createdAt });
  }

  async find(idHash: string): Promise<WebSessionRecord | null> {
    const record = this.sessions.get(idHash);
    return record ? { ...record } : null;
  }

  async touch(idHash: string, at: string): Promise<void> {
    const record = this.sessions.get(idHash);
    if (record) record.lastSeenAt = at;
  }

  async delete(idHash: string): Promise<void> {
    this.sessions.delete(idHash);
  }

  async revokeSetupAuthorizations(): Promise<number> {
    let count = 0;
    for (const [idHash, record] of this.sessions) {
      if (!record.setupAuthorized) continue;
      count += 1;
      if (record.adminUserId === null) this.sessions.delete(idHash);
      else record.setupAuthorized = false;
    }
    return count;
  }

  async deleteAll(): Promise<number> {
    const count = this.sessions.size;
    this.sessions.clear();
    return count;
  }

  async deleteExpired(now: string, idleBefore: string): Promise<number> {
    let count = 0;
    for (const [idHash, record] of this.sessions) {
      if (record.expiresAt <= now || record.lastSeenAt < idleBefore) {
        this.sessions.delete(idHash);
        count += 1;
      }
    }
    return count;
  }
}

/** The web_sessions table, through its repository. */
export class DatabaseSessionStore implements SessionStore {
  readonly persistent = true;

  constructor(private readonly repository: WebSessionRepository) {}

  create(session: NewWebSession): Promise<void> {
    return this.repository.create(session);
  }

  find(idHash: string): Promise<WebSessionRecord | null> {
    return this.repository.find(idHash);
  }

  touch(idHash: string, at: string): Promise<void> {
    return this.repository.touch(idHash, at);
  }

  delete(idHash: string): Promise<void> {
    return this.repository.delete(idHash);
  }

  revokeSetupAuthorizations(): Promise<number> {
    return this.repository.revokeSetupAuthorizations();
  }

  deleteExpired(now: string, idleBefore: string): Promise<number> {
    return this.repository.deleteExpired(now, idleBefore);
  }

  deleteAll(): Promise<number> {
    return this.repository.deleteAll();
  }
}

/**
 * The web_sessions rows a request read, served again for up to `freshMs`: a page under load reads its
 * session once a second, not once per request. What this process changes is changed here at once;
 * what another process changes (a logout on another replica, a restore) is seen within `freshMs`,
 * or at once where the lifecycle moved (`forgetRecent`). Ending a session never waits for the cache.
 */
export class RecentSessionStore implements SessionStore {
  readonly persistent: boolean;
  private readonly recent = new Map<string, { record: WebSessionRecord; readAt: number }>();

  constructor(
    private readonly inner: SessionStore,
    private readonly freshMs: number,
    private readonly clock: () => number = Date.now,
  ) {
    this.persistent = inner.persistent;
  }

  async create(session: NewWebSession, adminUsername: string | null): Promise<void> {
    await this.inner.create(session, adminUsername);
  }

  async find(idHash: string): Promise<WebSessionRecord | null> {
    const now = this.clock();
    const kept = this.recent.get(idHash);
    if (kept && now - kept.readAt < this.freshMs && now >= kept.readAt) return { ...kept.record };
    const record = await this.inner.find(idHash);
    if (record) {
      // Bounded: a flood of distinct ids keeps no more than a short window's worth.
      if (this.recent.size >= MAX_RECENT_SESSIONS) this.forgetRecent();
      this.recent.set(idHash, { record: { ...record }, readAt: now });
    } else {
      this.recent.delete(idHash);
    }
    return record;
  }

  async touch(idHash: string, at: string): Promise<void> {
    await this.inner.touch(idHash, at);
    const kept = this.recent.get(idHash);
    if (kept) kept.record.lastSeenAt = at;
  }

  // Forgotten before and after: a read that raced the change must not keep the row it saw.
  async delete(idHash: string): Promise<void> {
    this.recent.delete(idHash);
    await this.inner.delete(idHash);
    this.recent.delete(idHash);
  }

  revokeSetupAuthorizations(): Promise<number> {
    return this.forgettingAround(() => this.inner.revokeSetupAuthorizations());
  }

  deleteExpired(now: string, idleBefore: string): Promise<number> {
    return this.forgettingAround(() => this.inner.deleteExpired(now, idleBefore));
  }

  deleteAll(): Promise<number> {
    return this.forgettingAround(() => this.inner.deleteAll());
  }

  forgetRecent(): void {
    this.recent.clear();
  }

  private async forgettingAround(change: () => Promise<number>): Promise<number> {
    this.forgetRecent();
    try {
      return await change();
    } finally {
      this.forgetRecent();
    }
  }
}

const MAX_RECENT_SESSIONS = 10_000;
