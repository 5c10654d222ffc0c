import type { Knex } from 'knex';

/**
 * Where BOOT's check of the transition log last ended, authenticated with the DEK-derived chain key:
 * the next BOOT verifies only the rows after it (docs/audit-log.md).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('transition_log_checkpoint', (t) => {
    t.string('deployment', 100).primary();
    t.integer('revision').notNullable();
    t.string('hash', 64).notNullable();
    t.string('chain_key', 100).notNullable();
    t.string('mac', 64).notNullable();
    t.string('updated_at', 40).notNullable();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('transition_log_checkpoint');
}
