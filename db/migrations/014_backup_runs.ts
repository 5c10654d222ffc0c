import type { Knex } from 'knex';

/**
 * backup_runs: every backup and restore drill keyward made on its own (the schedule) or for the web
 * page, with its outcome, so that the last success survives restarts and every process sharing the
 * database sees it. A scheduled run is claimed by inserting its slot: the unique (deployment, kind,
 * slot) lets exactly one process of several insert it (manual runs have no slot; NULLs never clash).
 * Times are ISO 8601 strings in UTC, as everywhere in the schema.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('backup_runs', (t) => {
    t.increments('id');
    t.string('deployment', 64).notNullable();
    /** backup or drill */
    t.string('kind', 16).notNullable();
    /** schedule or web */
    t.string('triggered_by', 16).notNullable();
    /** The scheduled time this run stands for (ISO 8601), or null for a run asked for by hand. */
    t.string('slot', 32).nullable();
    /** running, ok or failed */
    t.string('status', 16).notNullable();
    t.string('started_at', 32).notNullable();
    t.string('finished_at', 32).nullable();
    /** The process that ran it: host, pid and home (one server per home), to mark its runs interrupted at its next start. */
    t.string('node_host', 255).notNullable();
    t.integer('node_pid').notNullable();
    t.string('node_home', 1024).notNullable();
    /** The archive's file name (scheduled runs: in the backup directory), never its passphrase. */
    t.string('archive', 255).nullable();
    t.bigInteger('size').nullable();
    /** The drill's recovery time, from an empty host to a verified secret. */
    t.float('rto_seconds').nullable();
    /** A sentence for the operator: what went wrong, or what was checked. */
    t.text('message').nullable();
    t.unique(['deployment', 'kind', 'slot']);
    t.index(['deployment', 'kind', 'started_at']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('backup_runs');
}
