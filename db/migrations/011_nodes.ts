import type { Knex } from 'knex';

/**
 * One row per running keyward process (docs/deployment.md "Several replicas"): its own view of what
 * it needs, beside the deployment's lifecycle and never a part of it. A node writes its row every
 * heartbeat and deletes it at a graceful shutdown; a row whose heartbeat is older than three of its
 * intervals is a node that is gone (killed, or its host lost).
 * The checks are null where they do not apply (no token under software storage, no DEK before one is made).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('nodes', (t) => {
    t.string('node_id', 200).primary();
    t.string('deployment', 64).notNullable();
    t.string('host', 255).notNullable();
    t.integer('pid').notNullable();
    t.string('version', 64).notNullable();
    t.integer('heartbeat_seconds').notNullable();
    t.string('started_at', 32).notNullable();
    t.string('last_heartbeat', 32).notNullable();
    t.boolean('ready').notNullable();
    /** JSON array of sentences: why the node is not ready (empty when it is). */
    t.text('reasons').notNullable();
    t.boolean('database_reachable').notNullable();
    t.boolean('token_reachable').nullable();
    t.boolean('dek_loaded').nullable();
    t.boolean('tls_current').nullable();
    t.index(['deployment']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('nodes');
}
