import type { Knex } from 'knex';
import { KEY_ID_LENGTH, type DekKeyring } from '../crypto/dek-keyring';
import { FIELD_FORMAT_VERSION } from '../crypto/field-aead';
import type { StoredField } from '../crypto/field-codec';
import { KeyCustodyError } from '../errors/key-custody-error';
import { now } from './clock';
import { returnedId } from './rows';
import type { KeyMaterialRepository } from './repositories/key-material-repository';
import { SECRET_COLUMNS, SecretFields } from './secret-fields';

/** Where the re-encryption job of a DEK rotation stands (docs/lifecycle.md "Key rotation"). */
export interface ReencryptionStatus {
  targetKeyId: string;
  valuesDone: number;
  /** Values under another key id when the job started. */
  valuesTotal: number;
  startedAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export interface ReencryptionOptions {
  /** Rows read per transaction. */
  batchSize?: number;
  /** Crash tests stop the process at `before-batch` and `batch-committed`. */
  checkpoint?: (name: string) => Promise<void>;
  onProgress?: (status: ReencryptionStatus) => void;
}

interface JobRow {
  id: number;
  target_key_id: string;
  cursor_table: string | null;
  cursor_id: number | string;
  values_done: number | string;
  values_total: number | string;
  started_at: string;
  updated_at: string;
  finished_at: string | null;
}

type SecretRow = { id: number } & Record<string, StoredField | null>;

/** A value that is not under `keyIdBytes`: keyward's format under another key id, or Trustpoint's (no key id). */
function underAnotherKey(stored: StoredField | null | undefined, keyIdBytes: Buffer): boolean {
  if (stored === null || stored === undefined || stored.length === 0) return false;
  if (typeof stored === 'string' || stored[0]! >= 0x20) return true;
  return stored[0] !== FIELD_FORMAT_VERSION || stored.compare(keyIdBytes, 0, KEY_ID_LENGTH, 1, 1 + KEY_ID_LENGTH) !== 0;
}

/** The key id a stored value names, or "legacy" for Trustpoint's format (which names none). */
function keyIdOf(stored: StoredField): string {
  if (typeof stored === 'string' || stored[0]! >= 0x20) return 'legacy';
  return stored.toString('hex', 1, 1 + KEY_ID_LENGTH);
}

/**
 * The re-encryption job of a DEK rotation: every secret value under an older key id (or in
 * Trustpoint's format) is opened and sealed again under the primary DEK, in batches, each batch one
 * transaction that also moves the cursor kept in `dek_rotation_jobs` — so a crash or a restart
 * resumes after the last committed batch. A row rewritten meanwhile by a writer (under the primary,
 * which the GCM counter's fence guarantees) is left as that writer made it: the update is a
 * compare-and-swap on the old value. Associated data stays table and column, so a value moved to
 * another column still fails.
 */
export class DekReencryption {
  constructor(
    private readonly db: Knex,
    private readonly reader: Knex,
    private readonly secrets: SecretFields,
    private readonly keyMaterial: KeyMaterialRepository,
    private readonly keyring: DekKeyring,
  ) {}

  async run(targetKeyId: string, options: ReencryptionOptions = {}): Promise<{ values: number; batches: number }> {
    const batchSize = options.batchSize ?? 500;
    if (this.keyring.current !== targetKeyId) {
      throw new KeyCustodyError('ROTATION_REFUSED', `DEK ${targetKeyId} is not the primary DEK of this process: values are re-encrypted only under the primary`);
    }
    const target = Buffer.from(targetKeyId, 'hex');
    const tables = Object.keys(SECRET_COLUMNS);
    let job = await this.openJob(targetKeyId);
    let tableIndex = job.cursor_table === null ? 0 : Math.max(0, tables.indexOf(job.cursor_table));
    let cursorId = Number(job.cursor_id);
    let values = 0;
    let batches = 0;
    while (job.finished_at === null) {
      if (tableIndex >= tables.length) {
        // A whole pass is done; a value left under an old key (none is expected: writes are fenced
        // to the primary) sends the job round once more rather than letting the old DEK be retired.
        const left = await this.countOutside(target);
        if (left > 0) {
          tableIndex = 0;
          cursorId = 0;
          continue;
        }
        job = await this.finish(job);
        break;
      }
      const table = tables[tableIndex]!;
      const columns = SECRET_COLUMNS[table]!;
      await options.checkpoint?.('before-batch');
      const batch = await this.db.transaction(async (trx) => {
        const rows = await trx(table)
          .select<SecretRow[]>('id', ...columns)
          .where('id', '>', cursorId)
          .orderBy('id', 'asc')
          .limit(batchSize);
        const codec = await this.secrets.codec(trx);
        let sealed = 0;
        let moved = 0;
        for (const row of rows) {
          const stale = columns.filter((column) => underAnotherKey(row[column], target));
          if (stale.length === 0) continue;
          const update: Record<string, Buffer> = {};
          for (const column of stale) update[column] = codec.seal(codec.open(row[column]!, { table, column }), { table, column });
          sealed += stale.length;
          let query = trx(table).where({ id: row.id });
          for (const column of stale) query = query.andWhere(column, row[column]!);
          if ((await query.update(update)) === 1) moved += stale.length;
        }
        await this.keyMaterial.addEncryptions(targetKeyId, sealed, trx);
        const full = rows.length === batchSize;
        const next = { cursor_table: full ? table : (tables[tableIndex + 1] ?? null), cursor_id: full ? rows[rows.length - 1]!.id : 0 };
        await trx('dek_rotation_jobs')
          .where({ id: job.id })
          .update({ ...next, values_done: Number(job.values_done) + moved, updated_at: now() });
        return { next, moved, end: next.cursor_table === null };
      });
      batches += 1;
      values += batch.moved;
      job = { ...job, cursor_table: batch.next.cursor_table, cursor_id: batch.next.cursor_id, values_done: Number(job.values_done) + batch.moved, updated_at: now() };
      tableIndex = batch.end ? tables.length : tables.indexOf(batch.next.cursor_table!);
      cursorId = batch.next.cursor_id;
      options.onProgress?.(statusOf(job));
      await options.checkpoint?.('batch-committed');
    }
    options.onProgress?.(statusOf(job));
    return { values, batches };
  }

  /** The newest job's progress, or null when no DEK rotation has run. */
  async status(): Promise<ReencryptionStatus | null> {
    const row = await this.reader<JobRow>('dek_rotation_jobs').orderBy('id', 'desc').first();
    return row ? statusOf(row) : null;
  }

  /** How many stored secret values each key id carries ("legacy": Trustpoint's format, no key id). */
  async countValuesByKeyId(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    await this.scan((stored) => counts.set(keyIdOf(stored), (counts.get(keyIdOf(stored)) ?? 0) + 1));
    return counts;
  }

  private async countOutside(target: Buffer): Promise<number> {
    let count = 0;
    await this.scan((stored) => {
      if (underAnotherKey(stored, target)) count += 1;
    });
    return count;
  }

  /** Every stored secret value, read in pages so that memory stays flat in the number of rows. */
  private async scan(visit: (stored: StoredField) => void): Promise<void> {
    for (const [table, columns] of Object.entries(SECRET_COLUMNS)) {
      for (let after = 0; ;) {
        const rows = await this.reader(table)
          .select<SecretRow[]>('id', ...columns)
          .where('id', '>', after)
          .orderBy('id', 'asc')
          .limit(5000);
        for (const row of rows) {
          for (const column of columns) {
            const stored = row[column];
            if (stored !== null && stored !== undefined && stored.length > 0) visit(stored);
          }
        }
        if (rows.length < 5000) break;
        after = rows[rows.length - 1]!.id;
      }
    }
  }

  /** The unfinished job for this DEK (a restart resumes it), or a new one; a job for another DEK is closed. */
  private async openJob(targetKeyId: string): Promise<JobRow> {
    const open = await this.db<JobRow>('dek_rotation_jobs').whereNull('finished_at').orderBy('id', 'desc');
    const resumed = open.find((job) => job.target_key_id === targetKeyId);
    const at = now();
    const superseded = open.filter((job) => job !== resumed).map((job) => job.id);
    if (superseded.length > 0) await this.db('dek_rotation_jobs').whereIn('id', superseded).update({ finished_at: at, updated_at: at });
    if (resumed) return resumed;
    const total = await this.countOutside(Buffer.from(targetKeyId, 'hex'));
    const row = { target_key_id: targetKeyId, cursor_table: null, cursor_id: 0, values_done: 0, values_total: total, started_at: at, updated_at: at, finished_at: null };
    const id = returnedId(await this.db('dek_rotation_jobs').insert(row).returning('id'));
    return { id, ...row };
  }

  private async finish(job: JobRow): Promise<JobRow> {
    const at = now();
    await this.db('dek_rotation_jobs').where({ id: job.id }).update({ finished_at: at, updated_at: at });
    return { ...job, finished_at: at, updated_at: at };
  }
}

function statusOf(row: JobRow): ReencryptionStatus {
  return {
    targetKeyId: row.target_key_id,
    valuesDone: Number(row.values_done),
    valuesTotal: Number(row.values_total),
    startedAt: row.started_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
  };
}
