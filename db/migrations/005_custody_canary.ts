import type { Knex } from 'knex';

/**
 * A canary secret, sealed like every other secret column: a restore or a drill proves that the
 * recovered DEK really opens the data by opening it. Its plaintext is random, so the hash kept beside
 * it gives nothing away.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('custody_canary', (t) => {
    t.increments('id');
    t.binary('value').notNullable();
    t.string('sha256', 64).notNullable();
    t.string('created_at', 32).notNullable();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('custody_canary');
}
