import type { Knex } from 'knex';

/**
 * web_sessions.summary_of: the completion (the time of the set-up or recovery that reached
 * operation) whose summary page this session may see: the session that finished it, which the
 * completion otherwise ends as a set-up session.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('web_sessions', (t) => {
    t.string('summary_of', 32).nullable();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('web_sessions', (t) => {
    t.dropColumn('summary_of');
  });
}
