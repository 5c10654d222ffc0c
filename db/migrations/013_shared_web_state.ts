import type { Knex } from 'knex';

/**
 * What the web kept in one process's memory (or one home's secrets directory), shared by every
 * process on the database so that replicas need nothing copied between them:
 * - web_secrets: the CSRF HMAC key; a secret column (docs/formats.md §4), sealed once a DEK exists.
 * - web_setup_code: the one-time set-up code, as a salted scrypt hash only (one row, id 1).
 * - web_rate_limits: failed-attempt counters per limit and client address, with their window's end.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('web_secrets', (t) => {
    t.increments('id');
    t.string('name', 64).notNullable().unique();
    t.binary('value').notNullable();
    t.string('created_at', 32).notNullable();
  });
  await db.schema.createTable('web_setup_code', (t) => {
    t.integer('id').primary();
    t.binary('salt').notNullable();
    t.binary('hash').notNullable();
    t.string('kdf', 64).notNullable();
    t.string('created_at', 32).notNullable();
    /** The node that printed the code on its console (host name and home): where an operator finds it. */
    t.string('created_by', 512).notNullable();
    t.string('used_at', 32).nullable();
  });
  await db.schema.createTable('web_rate_limits', (t) => {
    t.string('key', 200).primary();
    t.integer('hits').notNullable();
    /** Milliseconds since the epoch: numbers compare the same on both engines. */
    t.bigInteger('reset_at').notNullable();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('web_rate_limits');
  await db.schema.dropTableIfExists('web_setup_code');
  await db.schema.dropTableIfExists('web_secrets');
}
