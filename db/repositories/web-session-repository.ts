import type { Knex } from 'knex';
import type { WebSessionRow } from '../rows';

export interface WebSessionRecord {
  /** SHA-256 (hex) of the session id; the id itself lives only in the browser's cookie. */
  idHash: string;
  setupAuthorized: boolean;
  adminUserId: number | null;
  /** Joined from admin_users; null for a set-up session. */
  adminUsername: string | null;
  /** The completion (its time) whose summary page this session may see: it finished that set-up or recovery. */
  summaryOf: string | null;
  createdAt: string;
  lastSeenAt: string;
  expiresAt: string;
}

export interface NewWebSession {
  idHash: string;
  setupAuthorized: boolean;
  adminUserId: number | null;
  summaryOf?: string | null;
  createdAt: string;
  expiresAt: string;
}

const ID_HASH = /^[0-9a-f]{64}$/;

/** Server-side web sessions (web_sessions). Times are ISO-8601 UTC strings, compared as text. */
export class WebSessionRepository {
  constructor(
    private readonly db: Knex,
    private readonly reader: Knex = db,
  ) {}

  async tableExists(): Promise<boolean> {
    return this.db.schema.hasTable('web_sessions');
  }

  async create(session: NewWebSession): Promise<void> {
    if (!ID_HASH.test(session.idHash)) throw new Error('a web session is stored by the SHA-256 of its id');
    await this.db('web_sessions').insert({
      id_hash: session.idHash,
      setup_authorized: session.setupAuthorized,
      admin_user_id: session.adminUserId,
      ...(session.summaryOf ? { summary_of: session.summaryOf } : {}),
      created_at: session.createdAt,
      last_seen_at: session.createdAt,
      expires_at: session.expiresAt,
    });
  }

  async find(idHash: string): Promise<WebSessionRecord | null> {
    if (!ID_HASH.test(idHash)) return null;
    const row: (WebSessionRow & { admin_username: string | null }) | undefined = await this.reader<WebSessionRow>('web_sessions')
      .leftJoin('admin_users', 'admin_users.id', 'web_sessions.admin_user_id')
      .where('web_sessions.id_hash', idHash)
      .first('web_sessions.*', 'admin_users.username as admin_username');
    return row ? toRecord(row) : null;
  }

  async touch(idHash: string, at: string): Promise<void> {
    await this.db('web_sessions').where({ id_hash: idHash }).update({ last_seen_at: at });
  }

  async delete(idHash: string): Promise<void> {
    await this.db('web_sessions').where({ id_hash: idHash }).delete();
  }

  /** The wizard is complete: a set-up code grants nothing any more. Returns how many sessions lost it. */
  async revokeSetupAuthorizations(): Promise<number> {
    const ended = await this.db('web_sessions').where({ setup_authorized: true }).whereNull('admin_user_id').delete();
    const downgraded = await this.db('web_sessions').where({ setup_authorized: true }).update({ setup_authorized: false });
    return ended + downgraded;
  }

  /** Ends every session: after a restore, the archive's sessions belong to another installation. */
  async deleteAll(): Promise<number> {
    return this.db('web_sessions').delete();
  }

  /** Deletes sessions past their absolute expiry or idle since before `idleBefore`. */
  async deleteExpired(now: string, idleBefore: string): Promise<number> {
    return this.db('web_sessions').where('expires_at', '<=', now).orWhere('last_seen_at', '<', idleBefore).delete();
  }
}

function toRecord(row: WebSessionRow & { admin_username: string | null }): WebSessionRecord {
  return {
    idHash: row.id_hash,
    setupAuthorized: Boolean(row.setup_authorized),
    adminUserId: row.admin_user_id === null || row.admin_user_id === undefined ? null : Number(row.admin_user_id),
    adminUsername: row.admin_username ?? null,
    summaryOf: row.summary_of ?? null,
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
    expiresAt: row.expires_at,
  };
}
