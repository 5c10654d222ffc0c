import type { Knex } from 'knex';

/**
 * Recovery shares (docs/formats.md §6):
 * - recovery_share_sets: the current share set (one row at most): its id, N and K, the X25519 public
 *   key its recovery copies are sealed to, and one SHA-256 commitment per share so a share can be
 *   verified alone. Nothing in it recovers the key: the key and the shares are never stored.
 * - key_material.recovery_copy: each live DEK sealed (KWD1) to that public key.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('recovery_share_sets', (t) => {
    t.increments('id');
    t.string('share_set_id', 16).notNullable().unique();
    t.integer('shares').notNullable();
    t.integer('threshold').notNullable();
    t.binary('public_key').notNullable();
    t.binary('commitments').notNullable();
    t.string('created_at', 32).notNullable();
  });
  await db.schema.alterTable('key_material', (t) => {
    t.binary('recovery_copy').nullable();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('key_material', (t) => {
    t.dropColumn('recovery_copy');
  });
  await db.schema.dropTableIfExists('recovery_share_sets');
}
