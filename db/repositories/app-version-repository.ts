import type { Knex } from 'knex';
import { now } from '../clock';
import type { AppVersionRow } from '../rows';

/** The application version the database was last run with (Trustpoint's AppVersion). */
export class AppVersionRepository {
  constructor(private readonly db: Knex) {}

  async get(): Promise<string | null> {
    const row = await this.db<AppVersionRow>('app_version').where({ id: 1 }).first('version');
    return row?.version ?? null;
  }

  async set(version: string): Promise<void> {
    await this.db('app_version').insert({ id: 1, version, updated_at: now() }).onConflict('id').merge();
  }
}
