import type { Knex } from 'knex';
import { now } from '../clock';

export interface AdminUser {
  id: number;
  username: string;
  passwordHash: string;
  createdAt: string;
  lastLoginAt: string | null;
}

/** Administrators; the password is only ever here as an Argon2id hash. */
export class AdminUserRepository {
  constructor(private readonly db: Knex) {}

  async create(username: string, passwordHash: string): Promise<number> {
    const [row] = await this.db('admin_users').insert({ username, password_hash: passwordHash, created_at: now() }).returning('id');
    return Number(typeof row === 'object' ? row.id : row);
  }

  async findByUsername(username: string): Promise<AdminUser | null> {
    const row = await this.db('admin_users').where({ username }).first();
    return row ? toUser(row) : null;
  }

  async count(): Promise<number> {
    const [{ n }] = await this.db('admin_users').count({ n: '*' });
    return Number(n);
  }

  async recordLogin(id: number): Promise<void> {
    await this.db('admin_users').where({ id }).update({ last_login_at: now() });
  }
}

function toUser(row: Record<string, unknown>): AdminUser {
  return {
    id: Number(row.id),
    username: String(row.username),
    passwordHash: String(row.password_hash),
    createdAt: String(row.created_at),
    lastLoginAt: (row.last_login_at as string | null) ?? null,
  };
}
