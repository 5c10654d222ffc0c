import type { Knex } from 'knex';

/**
 * The devices' audit trail, beside the transition log: who changed which device, when, and what
 * ("name", "estPassword replaced"), never a value. Rows are hash-chained by `seq` (db/device-audit.ts);
 * `seq` is unique so that two writers appending at once cannot both extend the same head.
 * No foreign key: the entry of a deleted device outlives it.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('device_audit', (t) => {
    t.integer('seq').primary();
    t.integer('device_id').notNullable();
    t.string('device_name', 255).notNullable();
    t.string('actor', 200).notNullable();
    t.string('action', 64).notNullable();
    t.string('detail', 600).notNullable();
    t.string('created_at', 32).notNullable();
    t.string('prev_hash', 64).notNullable();
    t.string('hash', 64).notNullable();
    t.index(['device_id']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('device_audit');
}
