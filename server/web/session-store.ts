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
