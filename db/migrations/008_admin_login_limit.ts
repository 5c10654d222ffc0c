import type { Knex } from 'knex';

/**
 * A per-account login limit kept in the database, beside the per-address one the web keeps in
 * memory: it holds across restarts and is shared by every process on the database.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('admin_users', (t) => {
    t.integer('failed_logins').notNullable().defaultTo(0);
    t.string('locked_until', 32).nullable();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('admin_users', (t) => {
    t.dropColumn('failed_logins');
    t.dropColumn('locked_until');
  });
}
