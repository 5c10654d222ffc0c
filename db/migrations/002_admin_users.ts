import type { Knex } from 'knex';

/** Administrators created by the wizard's last step; passwords as Argon2id hashes (PHC strings). */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('admin_users', (t) => {
    t.increments('id');
    t.string('username', 150).notNullable().unique();
    t.string('password_hash', 255).notNullable();
    t.string('created_at', 32).notNullable();
    t.string('last_login_at', 32).nullable();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('admin_users');
}
