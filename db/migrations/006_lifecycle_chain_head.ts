import type { Knex } from 'knex';

/** The lifecycle row keeps the log's chain head, so a commit need not read the last log row again. */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('lifecycle', (t) => {
    t.string('chain_head', 64).nullable();
  });
  const rows = await db<{ deployment: string; revision: number }>('lifecycle').select('deployment', 'revision');
  for (const row of rows) {
    const last = await db<{ deployment: string; revision: number; hash: string | null }>('transition_log').where({ deployment: row.deployment, revision: row.revision }).first('hash');
    await db('lifecycle')
      .where({ deployment: row.deployment })
      .update({ chain_head: last?.hash ?? null });
  }
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('lifecycle', (t) => {
    t.dropColumn('chain_head');
  });
}
