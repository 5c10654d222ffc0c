import type { Knex } from 'knex';

/**
 * boot_lease: one row per deployment, the lease under which one process at a time runs BOOT
 * (docs/lifecycle.md "The engine"). `expires_at` is in milliseconds on the database's clock, so the
 * hosts' clocks never have to agree; `decided_at` and `decided_by` (host:pid) say when and by whom a
 * BOOT last released it after deciding, so a process can tell that another one decided the lifecycle
 * after it started.
 *
 * BOOT takes the lease before it migrates anything: on an empty database the table must exist before
 * the first migration runs, so it is created here and, idempotently, by the lease itself.
 */
export async function up(db: Knex): Promise<void> {
  await createBootLeaseTable(db);
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('boot_lease');
}

export async function createBootLeaseTable(db: Knex): Promise<void> {
  if (await db.schema.hasTable('boot_lease')) return;
  try {
    await db.schema.createTable('boot_lease', (t) => {
      t.string('deployment', 64).primary();
      t.string('holder', 64).nullable();
      t.string('host', 255).nullable();
      t.integer('pid').nullable();
      t.bigInteger('expires_at').notNullable().defaultTo(0);
      t.bigInteger('decided_at').notNullable().defaultTo(0);
      t.string('decided_by', 300).nullable();
    });
  } catch (error) {
    // Another process created it between the check and the CREATE (PostgreSQL reports the race as a
    // duplicate type or relation): it exists, which is all this wanted.
    if (!(await db.schema.hasTable('boot_lease'))) throw error;
  }
}
