import type { Knex } from 'knex';
import { KeywardError } from '../../errors/keyward-error';
import { ChainCheckpoint, ChainKey, ChainedRow, GENESIS, rowFromDatabase, rowHash, UNKEYED_CHAIN } from '../audit-chain';
import { now } from '../clock';
import { isPostgres, pendingMigrations } from '../database';
import { LIFECYCLE_CHANNEL } from '../lifecycle-notifications';
import type { LifecycleRow, TransitionLogCheckpointRow, TransitionLogRow } from '../rows';

export interface StoredLifecycle {
  revision: number;
  /** Hash of the log row at `revision`: the next row chains on from it. */
  chainHead: string | null;
  machineVersion: number;
  /** The persisted snapshot: state value, context, the effect in flight. Never a secret in it. */
  snapshot: unknown;
  state: string;
}

export interface TransitionEntry {
  eventType: string;
  source: string;
  fromState: string;
  toState: string;
  payload: Record<string, unknown>;
  at: string;
}

export interface TransitionRow extends TransitionEntry {
  revision: number;
}

/** Raised when another writer committed first: re-read and retry, or report. */
export class LifecycleConflictError extends KeywardError {
  constructor(readonly expectedRevision: number | null) {
    super('CONFLICT', `the lifecycle changed under this writer (expected revision ${expectedRevision ?? 'none'}): re-read and retry`);
    this.name = 'LifecycleConflictError';
  }
}

/** The persisted machine (one row per deployment) and its transition log, written together. */
export class LifecycleRepository {
  /** Told of every commit once it is durable (the home's high-water mark listens). */
  onCommit: ((deployment: string, revision: number, chainHead: string) => void) | null = null;

  constructor(
    private readonly db: Knex,
    /** For reads outside transactions; a commit's own reads go through its transaction. */
    private readonly reader: Knex = db,
  ) {}

  async tablesExist(): Promise<boolean> {
    return (await this.db.schema.hasTable('lifecycle')) && (await this.db.schema.hasTable('transition_log'));
  }

  /** The tables exist and every migration has run: the columns this keyward writes are there. */
  async schemaCurrent(): Promise<boolean> {
    return (await this.tablesExist()) && (await pendingMigrations(this.db)).length === 0;
  }

  async load(deployment: string): Promise<StoredLifecycle | null> {
    const row = await this.reader<LifecycleRow>('lifecycle').where({ deployment }).first();
    if (!row) return null;
    return { revision: Number(row.revision), chainHead: row.chain_head ?? null, machineVersion: Number(row.machine_version), snapshot: JSON.parse(row.snapshot), state: row.state };
  }

  /**
   * Compare-and-swap: writes the new snapshot only if the row is still at `expectedRevision` (null: no
   * row yet), and appends one log row per entry with consecutive revisions, each chained to the one
   * before it under `chainKey`, in one transaction.
   */
  async commit(
    deployment: string,
    expectedRevision: number | null,
    next: { machineVersion: number; snapshot: unknown; state: string },
    entries: TransitionEntry[],
    chainKey: ChainKey = UNKEYED_CHAIN,
    expectedHead?: string | null,
  ): Promise<{ revision: number; chainHead: string }> {
    if (entries.length === 0) throw new Error('a lifecycle commit records at least one transition');
    const revision = (expectedRevision ?? 0) + entries.length;
    let head = '';
    try {
      await this.db.transaction(async (trx) => {
        // The caller read the head with the row it expects; the compare-and-swap below keeps them together.
        let previous: string =
          expectedRevision === null ? GENESIS : (expectedHead ?? (await trx<TransitionLogRow>('transition_log').where({ deployment, revision: expectedRevision }).first('hash'))?.hash ?? GENESIS);
        const rows = entries.map((entry, index) => {
          const row = { deployment, revision: (expectedRevision ?? 0) + index + 1, ...entry, chainKey: chainKey.id };
          const hash = rowHash(chainKey.key, previous, row);
          const columns = {
            deployment,
            revision: row.revision,
            event_type: entry.eventType,
            source: entry.source,
            from_state: entry.fromState,
            to_state: entry.toState,
            payload: JSON.stringify(entry.payload),
            created_at: entry.at,
            chain_key: chainKey.id,
            prev_hash: previous,
            hash,
          };
          previous = hash;
          return columns;
        });
        head = previous;
        const columns = { revision, machine_version: next.machineVersion, snapshot: JSON.stringify(next.snapshot), state: next.state, chain_head: head, updated_at: now() };
        if (expectedRevision === null) {
          await trx('lifecycle').insert({ deployment, ...columns });
        } else {
          // The chain head as well as the revision: a store restored in the meantime may be at the same revision.
          const expected = typeof expectedHead === 'string' ? { deployment, revision: expectedRevision, chain_head: expectedHead } : { deployment, revision: expectedRevision };
          const changed = await trx('lifecycle').where(expected).update(columns);
          if (changed !== 1) throw new LifecycleConflictError(expectedRevision);
        }
        await trx('transition_log').insert(rows);
        // Delivered at commit, and only if it commits: every node listening polls at once.
        if (isPostgres(this.db)) await trx.raw('SELECT pg_notify(?, ?)', [LIFECYCLE_CHANNEL, `${deployment}:${revision}`]);
      });
    } catch (error) {
      if (error instanceof LifecycleConflictError) throw error;
      // A concurrent first insert, or a log revision taken by another writer: the same conflict.
      if (/UNIQUE|unique|duplicate key/.test(String((error as Error).message))) throw new LifecycleConflictError(expectedRevision);
      throw error;
    }
    this.onCommit?.(deployment, revision, head);
    return { revision, chainHead: head };
  }

  /** The hash of one log row, or null when there is no such row. */
  async hashAt(deployment: string, revision: number): Promise<string | null> {
    return (await this.db<TransitionLogRow>('transition_log').where({ deployment, revision }).first('hash'))?.hash ?? null;
  }

  /** Every row of a deployment's log, in revision order, for chain verification and export. */
  async chain(deployment: string): Promise<ChainedRow[]> {
    const rows = await this.db('transition_log').where({ deployment }).orderBy('revision');
    return rows.map(rowFromDatabase);
  }

  /** The rows after `revision`, in revision order (BOOT's check from a checkpoint). */
  async chainAfter(deployment: string, revision: number): Promise<ChainedRow[]> {
    const rows = await this.reader('transition_log').where({ deployment }).andWhere('revision', '>', revision).orderBy('revision');
    return rows.map(rowFromDatabase);
  }

  async chainRow(deployment: string, revision: number): Promise<ChainedRow | null> {
    const row = await this.reader<TransitionLogRow>('transition_log').where({ deployment, revision }).first();
    return row ? rowFromDatabase(row) : null;
  }

  /** The deployment's checkpoint, or null (none yet, or a schema from before migration 009). */
  async checkpoint(deployment: string): Promise<ChainCheckpoint | null> {
    if (!(await this.db.schema.hasTable('transition_log_checkpoint'))) return null;
    const row = await this.reader<TransitionLogCheckpointRow>('transition_log_checkpoint').where({ deployment }).first();
    return row ? { deployment, revision: Number(row.revision), hash: String(row.hash), chainKey: String(row.chain_key), mac: String(row.mac) } : null;
  }

  async saveCheckpoint(checkpoint: ChainCheckpoint): Promise<void> {
    if (!(await this.db.schema.hasTable('transition_log_checkpoint'))) return;
    const { deployment, revision, hash, chainKey, mac } = checkpoint;
    await this.db('transition_log_checkpoint').insert({ deployment, revision, hash, chain_key: chainKey, mac, updated_at: now() }).onConflict('deployment').merge();
  }

  async history(deployment: string, options: { limit?: number; afterRevision?: number } = {}): Promise<TransitionRow[]> {
    let query = this.reader('transition_log')
      .where({ deployment })
      .orderBy('revision', 'desc')
      .limit(options.limit ?? 50);
    if (options.afterRevision !== undefined) query = query.andWhere('revision', '>', options.afterRevision);
    const rows = await query;
    return rows.reverse().map((row: Record<string, unknown>) => ({
      revision: Number(row.revision),
      eventType: String(row.event_type),
      source: String(row.source),
      fromState: String(row.from_state),
      toState: String(row.to_state),
      payload: JSON.parse(String(row.payload)) as Record<string, unknown>,
      at: String(row.created_at),
    }));
  }
}
