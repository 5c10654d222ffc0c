import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import knex from 'knex';
import type { DatabaseConfig } from '../../db/database';
import { testDir } from './run-dir';

export type Engine = 'sqlite' | 'postgres';

/**
 * The engines the database tests run on. PostgreSQL is required, not optional: scripts/test.sh
 * starts a private cluster and exports KEYWARD_TEST_PG_URL. KEYWARD_TEST_SKIP_PG=1 opts out explicitly.
 */
export function engines(): Engine[] {
  return process.env.KEYWARD_TEST_SKIP_PG === '1' ? ['sqlite'] : ['sqlite', 'postgres'];
}

export interface TestDatabase {
  config: DatabaseConfig;
  /** Where an SQLite file lives (for the secret scan), or null. */
  file: string | null;
  drop(): Promise<void>;
}

export async function freshDatabase(engine: Engine, name: string): Promise<TestDatabase> {
  if (engine === 'sqlite') {
    const file = join(testDir(`db-${name}`), 'keyward.sqlite');
    return { config: { client: 'sqlite', filename: file }, file, drop: async () => {} };
  }
  const base = process.env.KEYWARD_TEST_PG_URL;
  if (!base) throw new Error('KEYWARD_TEST_PG_URL is not set: run the suite with npm test (scripts/test.sh starts PostgreSQL), or set KEYWARD_TEST_SKIP_PG=1');
  const database = `kw_${name
    .replace(/[^a-z0-9]/gi, '_')
    .toLowerCase()
    .slice(0, 30)}_${randomBytes(4).toString('hex')}`;
  const admin = knex({ client: 'pg', connection: base, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE ${database}`);
  await admin.destroy();
  const url = new URL(base);
  url.pathname = `/${database}`;
  return {
    config: { client: 'pg', connectionString: url.toString() },
    file: null,
    drop: async () => {
      const cleanup = knex({ client: 'pg', connection: base, pool: { min: 0, max: 1 } });
      await cleanup.raw(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await cleanup.destroy();
    },
  };
}
