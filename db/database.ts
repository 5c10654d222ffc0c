import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import knex, { Knex } from 'knex';
import { migrationSource } from './migrations';

export type DatabaseConfig = { client: 'sqlite'; filename: string } | { client: 'pg'; connectionString: string };

/** DATABASE_URL (postgres://…) selects PostgreSQL; otherwise the SQLite file under the home directory. */
export function databaseConfigFromEnv(env: NodeJS.ProcessEnv, defaultSqlite: string): DatabaseConfig {
  const url = env.DATABASE_URL;
  if (url && /^postgres(ql)?:\/\//.test(url)) return { client: 'pg', connectionString: url };
  if (url && url.startsWith('sqlite:')) return { client: 'sqlite', filename: url.slice('sqlite:'.length) };
  if (url) throw new Error('DATABASE_URL must be postgres://… or sqlite:PATH');
  return { client: 'sqlite', filename: env.KEYWARD_SQLITE ?? defaultSqlite };
}

export function describeDatabase(config: DatabaseConfig): string {
  // The connection string may carry a password; only its host and database are shown.
  if (config.client === 'sqlite') return `sqlite:${config.filename}`;
  const url = new URL(config.connectionString);
  return `postgresql://${url.host}${url.pathname}`;
}

/** `searchPath` (PostgreSQL only): work in another schema, as a restore does before it swaps schemas. */
export function openDatabase(config: DatabaseConfig, options: { searchPath?: string } = {}): Knex {
  if (config.client === 'sqlite') {
    mkdirSync(dirname(config.filename), { recursive: true });
    // The file holds key material and, under software storage, secrets in plaintext: owner only.
    if (!existsSync(config.filename)) closeSync(openSync(config.filename, 'a', 0o600));
    return knex({
      client: 'sqlite3',
      connection: { filename: config.filename },
      useNullAsDefault: true,
      // One connection: SQLite serializes writers anyway, and transactions must not interleave.
      pool: {
        min: 1,
        max: 1,
        afterCreate(connection: { run(sql: string, cb: (error: Error | null) => void): void }, done: (error: Error | null, connection: unknown) => void) {
          // secure_delete: a deleted secret (a dead plaintext credential) is overwritten, not left in a free page.
          const pragmas = ['PRAGMA foreign_keys = ON', 'PRAGMA journal_mode = WAL', 'PRAGMA busy_timeout = 10000', 'PRAGMA synchronous = FULL', 'PRAGMA secure_delete = ON'];
          const next = (index: number): void => {
            if (index === pragmas.length) return done(null, connection);
            connection.run(pragmas[index]!, (error) => (error ? done(error, connection) : next(index + 1)));
          };
          next(0);
        },
      },
    });
  }
  return knex({ client: 'pg', connection: config.connectionString, pool: { min: 0, max: 10 }, ...(options.searchPath ? { searchPath: [options.searchPath] } : {}) });
}

/** Whether the schema exists at all (DB_NOT_INITIALIZED when not). */
export async function isSchemaPresent(db: Knex): Promise<boolean> {
  return db.schema.hasTable('app_version');
}

export async function migrateToLatest(db: Knex): Promise<string[]> {
  const [, applied] = (await db.migrate.latest({ migrationSource })) as [number, string[]];
  return applied;
}

export async function latestSchemaVersion(): Promise<string> {
  const all = await migrationSource.getMigrations([]);
  return all[all.length - 1]!;
}

export async function pendingMigrations(db: Knex): Promise<string[]> {
  const [, pending] = (await db.migrate.list({ migrationSource })) as [unknown, Array<{ file: string } | string>];
  return pending.map((entry) => (typeof entry === 'string' ? entry : entry.file));
}
