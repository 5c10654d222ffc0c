import type { Knex } from 'knex';
import type { KeyMaterialRecord, KeyMaterialStore } from '../../hsm/key-hierarchy';
import type { WrapMechanism, WrappedKey } from '../../hsm/key-wrapper';
import { now } from '../clock';
import { ConfigCache } from '../config-cache';
import type { KeyMaterialRow } from '../rows';

/** The wrapped DEK and its backup copy (docs/formats.md); never the DEK. */
export class KeyMaterialRepository implements KeyMaterialStore {
  constructor(
    private readonly db: Knex,
    private readonly reader: Knex = db,
    private readonly cache: ConfigCache = new ConfigCache(),
  ) {}

  async current(): Promise<KeyMaterialRecord | null> {
    const record = await this.cache.get('keyMaterial', async () => recordOf(await this.reader<KeyMaterialRow>('key_material').orderBy('id', 'desc').first()));
    // Callers get their own buffers: the kept record stays as read.
    return (
      record && {
        ...record,
        wrapped: record.wrapped && { ...record.wrapped, kek: { ...record.wrapped.kek }, blob: Buffer.from(record.wrapped.blob) },
        backupCopy: record.backupCopy && Buffer.from(record.backupCopy),
      }
    );
  }

  async create(dekKeyId: string, wrapped: WrappedKey): Promise<void> {
    const at = now();
    try {
      await this.db('key_material').insert({ dek_key_id: dekKeyId, ...wrappedColumns(wrapped), gcm_encryptions: 0, created_at: at, updated_at: at });
    } finally {
      this.cache.invalidate();
    }
  }

  async replaceWrapped(dekKeyId: string, wrapped: WrappedKey): Promise<void> {
    await this.update(dekKeyId, wrappedColumns(wrapped));
  }

  async setBackupCopy(dekKeyId: string, copy: Buffer): Promise<void> {
    await this.update(dekKeyId, { backup_copy: copy });
  }

  /** Inside `trx` (a row's write): the kept record is dropped again when that transaction ends. */
  async addEncryptions(dekKeyId: string, count: number, trx: Knex = this.db): Promise<void> {
    if (count === 0) return;
    try {
      await trx('key_material').where({ dek_key_id: dekKeyId }).increment('gcm_encryptions', count);
    } finally {
      this.cache.invalidateAfter(trx === this.db ? undefined : trx);
    }
  }

  private async update(dekKeyId: string, columns: Record<string, unknown>): Promise<void> {
    let changed: number;
    try {
      changed = await this.db('key_material')
        .where({ dek_key_id: dekKeyId })
        .update({ ...columns, updated_at: now() });
    } finally {
      this.cache.invalidate();
    }
    if (changed !== 1) throw new Error(`no key material with DEK key id ${dekKeyId}`);
  }
}

function recordOf(row: KeyMaterialRow | undefined): KeyMaterialRecord | null {
  if (!row) return null;
  // wrappedColumns() writes the mechanism and the KEK's label together with the blob.
  const wrapped: WrappedKey | null =
    row.wrapped_dek === null ? null : { mechanism: row.wrap_mechanism as WrapMechanism, kek: { label: row.kek_label as string, id: row.kek_id ?? '' }, blob: Buffer.from(row.wrapped_dek) };
  return {
    dekKeyId: row.dek_key_id,
    wrapped,
    backupCopy: row.backup_copy === null ? null : Buffer.from(row.backup_copy),
    gcmEncryptions: Number(row.gcm_encryptions),
  };
}

function wrappedColumns(wrapped: WrappedKey): Record<string, unknown> {
  return { wrapped_dek: wrapped.blob, wrap_mechanism: wrapped.mechanism, kek_label: wrapped.kek.label, kek_id: wrapped.kek.id };
}
