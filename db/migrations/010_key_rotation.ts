import type { Knex } from 'knex';

/**
 * The DEK becomes a keyset (docs/formats.md §5, docs/lifecycle.md "Key rotation"):
 * - key_material: one row per DEK, `state` primary (writes new values), active (still read) or
 *   retired (no value carries its key id; its wrapped and backup copies are wiped);
 *   `kek_created_at` dates the KEK that wraps it, for the rotation policy.
 * - backup_key: the X25519 backup key (KWK1) that the backup password opens; each live DEK's
 *   backup_copy is sealed to its public key (KWD1), so a rotation adds a copy without the password.
 * - dek_rotation_jobs: the re-encryption job's cursor and counts, so a crash resumes where it stopped.
 * - log_chain_keys: the transition-log chain keys of retired DEKs, sealed under the live keyset (a
 *   secret column like any other), so that rows chained under a retired DEK still verify.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('key_material', (t) => {
    t.string('state', 16).notNullable().defaultTo('primary');
    t.string('kek_created_at', 32).nullable();
    t.string('retired_at', 32).nullable();
  });
  await db.schema.createTable('backup_key', (t) => {
    t.increments('id');
    t.binary('public_key').notNullable();
    t.binary('record').notNullable();
    t.string('created_at', 32).notNullable();
  });
  await db.schema.createTable('dek_rotation_jobs', (t) => {
    t.increments('id');
    t.string('target_key_id', 16).notNullable();
    /** The table and row id the job has re-encrypted up to (SECRET_COLUMNS order, ids ascending). */
    t.string('cursor_table', 64).nullable();
    t.bigInteger('cursor_id').notNullable().defaultTo(0);
    t.bigInteger('values_done').notNullable().defaultTo(0);
    t.bigInteger('values_total').notNullable().defaultTo(0);
    t.string('started_at', 32).notNullable();
    t.string('updated_at', 32).notNullable();
    t.string('finished_at', 32).nullable();
  });
  await db.schema.createTable('log_chain_keys', (t) => {
    t.increments('id');
    t.string('chain_key', 100).notNullable().unique();
    t.binary('sealed_key').notNullable();
    t.string('created_at', 32).notNullable();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('log_chain_keys');
  await db.schema.dropTableIfExists('dek_rotation_jobs');
  await db.schema.dropTableIfExists('backup_key');
  await db.schema.alterTable('key_material', (t) => {
    t.dropColumn('state');
    t.dropColumn('kek_created_at');
    t.dropColumn('retired_at');
  });
}
