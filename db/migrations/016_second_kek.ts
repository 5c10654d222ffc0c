import type { Knex } from 'knex';

/**
 * A second KEK (docs/formats.md "The second KEK"): every live DEK is also wrapped under a KEK in a
 * second PKCS#11 token, so that losing the first token loses no DEK. The primary wrap stays in
 * key_material where it always was; the further wraps live beside it, one row per DEK and KEK.
 * - second_kek_config: the second token (one row, id 1); the PIN is never stored, only where it is read.
 * - kek_wraps: one wrapped copy of a DEK under a KEK that is not the primary one.
 * - kek_health: whether each KEK unwrapped its copy at the last probe, and since when it has (not).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('second_kek_config', (t) => {
    t.integer('id').primary();
    t.string('module_path', 4096).notNullable();
    t.string('token_label', 32).notNullable();
    t.string('kek_label', 128).notNullable();
    t.string('kek_id', 64).notNullable();
    t.string('pin_source', 4200).notNullable();
    t.string('created_at', 32).notNullable();
  });
  await db.schema.createTable('kek_wraps', (t) => {
    t.string('dek_key_id', 64).notNullable();
    /** Which KEK: `second` (the primary's wrap is key_material.wrapped_dek). */
    t.string('kek', 16).notNullable();
    t.string('token_label', 32).notNullable();
    t.string('kek_label', 128).notNullable();
    t.string('kek_id', 64).notNullable();
    t.string('wrap_mechanism', 32).notNullable();
    t.binary('wrapped_dek').notNullable();
    t.string('created_at', 32).notNullable();
    t.primary(['dek_key_id', 'kek']);
  });
  await db.schema.createTable('kek_health', (t) => {
    t.string('kek', 16).primary();
    t.boolean('healthy').notNullable();
    /** When the KEK was last seen to change between healthy and unhealthy (or first probed). */
    t.string('since', 32).notNullable();
    t.string('problem', 64).nullable();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('kek_health');
  await db.schema.dropTableIfExists('kek_wraps');
  await db.schema.dropTableIfExists('second_kek_config');
}
