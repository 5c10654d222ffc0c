import type { Knex } from 'knex';

/**
 * Web sessions, kept on the server so that logging out or finishing the wizard really ends them.
 * Only a SHA-256 of the session id is stored: a copy of the database (a backup) holds no usable
 * session. A row exists only for a privileged session (set-up code given, or an admin logged in);
 * an anonymous visitor has a random id in a cookie and nothing here.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('web_sessions', (t) => {
    t.string('id_hash', 64).primary();
    t.boolean('setup_authorized').notNullable().defaultTo(false);
    t.integer('admin_user_id').nullable().references('id').inTable('admin_users').onDelete('CASCADE');
    t.string('created_at', 32).notNullable();
    t.string('last_seen_at', 32).notNullable();
    t.string('expires_at', 32).notNullable();
    t.index(['expires_at']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('web_sessions');
}
