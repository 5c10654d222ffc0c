import type { Knex } from 'knex';
import { chainExistingRows } from '../audit-chain';

/**
 * The transition log becomes a hash chain: every row carries the hash of the row before it and its
 * own, an HMAC under a key derived from the DEK where storage is an HSM (docs/audit-log.md).
 * Rows written before this migration are chained here, unkeyed, in revision order.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('transition_log', (t) => {
    t.string('chain_key', 40).notNullable().defaultTo('none');
    t.string('prev_hash', 64).nullable();
    t.string('hash', 64).nullable();
  });
  await chainExistingRows(db);
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('transition_log', (t) => {
    t.dropColumn('chain_key');
    t.dropColumn('prev_hash');
    t.dropColumn('hash');
  });
}
