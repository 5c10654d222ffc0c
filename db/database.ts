import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Knex } from 'knex';

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
    // One connection: SQLite serializes writers anyway, and transactions must not interleave.
    // secure_delete: a deleted secret (a dead plaintext credential) is overwritten, not left in a free page.
    return immediateTransactions(sqliteKnex(config.filename, 1, ['PRAGMA foreign_keys = ON', ...SWITCH_TO_WAL, 'PRAGMA synchronous = FULL', 'PRAGMA secure_delete = ON']));
  }
  return knex({ client: 'pg', connection: config.connectionString, pool: { min: 0, max: 10 }, ...(options.searchPath ? { searchPath: [options.searchPath] } : {}) });
}

/** Read connections beside one writer: SQLite reads need not queue behind the single writer connection. */
export const SQLITE_READERS = 3;

/**
 * Connections for reads outside transactions. SQLite: read-only connections of their own in WAL mode,
 * where each statement reads the last committed state (never a writer's half-done transaction) and
 * readers and the writer do not block each other; they open and close with `writer` (a restore swaps
 * the file under both). PostgreSQL: the writer's pool, which already has many connections.
 */
export function openReader(config: DatabaseConfig, writer: Knex): Knex {
  if (config.client !== 'sqlite') return writer;
  const reader = sqliteKnex(config.filename, SQLITE_READERS, [...SWITCH_TO_WAL, 'PRAGMA query_only = ON'], 0);
  // knex's own methods cannot be replaced; its client's (which they call) can, on this instance.
  const client = writer.client as { destroy(...args: unknown[]): Promise<unknown>; initializePool(...args: unknown[]): unknown };
  const destroy = client.destroy.bind(client);
  const initializePool = client.initializePool.bind(client);
  client.destroy = async (...args: unknown[]) => {
    await reader.destroy();
    return destroy(...args);
  };
  client.initializePool = (...args: unknown[]) => {
    const result = initializePool(...args);
    reader.initialize();
    return result;
  };
  return reader;
}

/**
 * SQLite write transactions take the write lock at BEGIN (BEGIN IMMEDIATE), where busy_timeout waits
 * for another process's writer. knex's BEGIN is deferred: a transaction that reads first and another
 * process commits meanwhile gets SQLITE_BUSY at its first write, at once, without waiting (WAL mode).
 */
function immediateTransactions(db: Knex): Knex {
  type Trx = { begin(connection: unknown): Promise<unknown>; query(connection: unknown, sql: string): Promise<unknown> };
  const client = db.client as { transaction(...args: unknown[]): Trx };
  const make = client.transaction.bind(client);
  client.transaction = (...args: unknown[]) => {
    const trx = make(...args);
    trx.begin = (connection) => trx.query(connection, 'BEGIN IMMEDIATE;');
    return trx;
  };
  return db;
}

/** knex is loaded when a database is opened: commands that need none start without it. */
function knex(config: Knex.Config): Knex {
  return (require('knex') as typeof import('knex')).knex(config);
}

/**
 * Two connections switching a new file to WAL at once can each wait for the other's lock: SQLite then
 * fails one at once or, as measured, after the whole busy_timeout. The switch gets a short timeout and
 * is tried again (afterCreate below) until PRAGMA_BUSY_WAIT_MS; then the normal timeout applies.
 */
const SWITCH_TO_WAL = ['PRAGMA busy_timeout = 50', 'PRAGMA journal_mode = WAL', 'PRAGMA busy_timeout = 10000'];
const PRAGMA_BUSY_WAIT_MS = 10_000;

function sqliteKnex(filename: string, max: number, pragmas: string[], min = max): Knex {
  return knex({
    client: 'sqlite3',
    connection: { filename },
    useNullAsDefault: true,
    pool: {
      min,
      max,
      afterCreate(connection: { run(sql: string, cb: (error: Error | null) => void): void }, done: (error: Error | null, connection: unknown) => void) {
        const started = Date.now();
        const next = (index: number): void => {
          if (index === pragmas.length) return done(null, connection);
          connection.run(pragmas[index]!, (error) => {
            if (!error) return next(index + 1);
            if ((error as { code?: string }).code === 'SQLITE_BUSY' && Date.now() - started < PRAGMA_BUSY_WAIT_MS) {
              setTimeout(() => next(index), 10 + Math.random() * 40);
              return;
            }
            done(error, connection);
          });
        };
        next(0);
      },
    },
  });
}

export function isPostgres(db: Knex): boolean {
  return String((db.client as { config: { client: unknown } }).config.client) === 'pg';
}

/** The rows of a raw query: SQLite's driver gives them as an array, PostgreSQL's in `rows`. */
export async function rawRows<T>(db: Knex, sql: string, bindings: readonly Knex.RawBinding[] = []): Promise<T[]> {
  const result = (await db.raw(sql, bindings)) as T[] | { rows: T[] };
  return Array.isArray(result) ? result : result.rows;
}

/** Whether the schema exists at all (DB_NOT_INITIALIZED when not). */
export async function isSchemaPresent(db: Knex): Promise<boolean> {
  return db.schema.hasTable('app_version');
}

/** The migrations (and the knex types they need) load with the first use. */
function migrations(): Knex.MigrationSource<string> {
  return (require('./migrations') as typeof import('./migrations')).migrationSource;
}

export async function migrateToLatest(db: Knex): Promise<string[]> {
  const [, applied] = (await db.migrate.latest({ migrationSource: migrations() })) as [number, string[]];
  return applied;
}

export async function latestSchemaVersion(): Promise<string> {
  const all = await migrations().getMigrations([]);
  return all[all.length - 1]!;
}

export async function pendingMigrations(db: Knex): Promise<string[]> {
  const [, pending] = (await db.migrate.list({ migrationSource: migrations() })) as [unknown, Array<{ file: string } | string>];
  return pending.map((entry) => (typeof entry === 'string' ? entry : entry.file));
}
