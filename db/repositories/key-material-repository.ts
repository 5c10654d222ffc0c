import type { Knex } from 'knex';
import { KeyCustodyError } from '../../errors/key-custody-error';
import type { BackupKeyRecord, DekState, KeyMaterialRecord, KeyMaterialStore } from '../../hsm/key-hierarchy';
import type { WrapMechanism, WrappedKey } from '../../hsm/key-wrapper';
import { now } from '../clock';
import { ConfigCache } from '../config-cache';
import type { RecoveryShareSetRecord } from '../../crypto/recovery-shares';
import type { BackupKeyRow, KeyMaterialRow, RecoveryShareSetRow } from '../rows';

/**
 * The keyset's stored copies (docs/formats.md): per DEK its wrapped blob and backup copy, and the
 * backup key they are sealed to; never a DEK.
 */
export class KeyMaterialRepository implements KeyMaterialStore {
  constructor(
    private readonly db: Knex,
    private readonly reader: Knex = db,
    private readonly cache: ConfigCache = new ConfigCache(),
  ) {}

  /** Drops what was read: another process changed the keyset. */
  forgetReadings(): void {
    this.cache.invalidate();
  }

  /** Every DEK not retired, the primary first. */
  async keyset(): Promise<KeyMaterialRecord[]> {
    // Filtered here, not in SQL: BOOT probes a database whose migrations may not have run yet (no `state` column).
    const records = await this.cache.get('keyset', async () => (await this.all()).filter((record) => record.state !== 'retired'));
    // Callers get their own buffers: the kept records stay as read.
    return [...records].sort((a, b) => Number(b.state === 'primary') - Number(a.state === 'primary')).map(copyOf);
  }

  /** The primary DEK's record (the one new values are written with), or null before the first DEK. */
  async current(): Promise<KeyMaterialRecord | null> {
    return (await this.keyset()).find((record) => record.state === 'primary') ?? null;
  }

  /** Every DEK ever made, retired ones included (the status page's history, the audit). */
  async all(): Promise<KeyMaterialRecord[]> {
    return (await this.reader<KeyMaterialRow>('key_material').orderBy('id', 'asc')).map(recordOf);
  }

  async create(dekKeyId: string, wrapped: WrappedKey, state: DekState = 'primary', backupCopy: Buffer | null = null, recoveryCopy: Buffer | null = null): Promise<void> {
    const at = now();
    // A DEK added beside others is wrapped under their KEK, whose age is theirs, not this DEK's.
    const kekCreatedAt = (await this.keyset()).find((record) => record.wrapped?.kek.id === wrapped.kek.id)?.kekCreatedAt ?? at;
    try {
      await this.db('key_material').insert({
        dek_key_id: dekKeyId,
        ...wrappedColumns(wrapped),
        backup_copy: backupCopy,
        recovery_copy: recoveryCopy,
        state,
        gcm_encryptions: 0,
        kek_created_at: kekCreatedAt,
        created_at: at,
        updated_at: at,
      });
    } finally {
      this.cache.invalidate();
    }
  }

  async replaceWrapped(dekKeyId: string, wrapped: WrappedKey): Promise<void> {
    await this.update(dekKeyId, wrappedColumns(wrapped));
  }

  /** Every live DEK wrapped under a new KEK, in one transaction: all or none. */
  async replaceAllWrapped(wraps: ReadonlyMap<string, WrappedKey>, kekCreatedAt: string): Promise<void> {
    try {
      await this.db.transaction(async (trx) => {
        for (const [dekKeyId, wrapped] of wraps) await updateRow(trx, dekKeyId, { ...wrappedColumns(wrapped), kek_created_at: kekCreatedAt });
      });
    } finally {
      this.cache.invalidate();
    }
  }

  async setBackupCopy(dekKeyId: string, copy: Buffer): Promise<void> {
    await this.update(dekKeyId, { backup_copy: copy });
  }

  async backupKey(): Promise<BackupKeyRecord | null> {
    const row = await this.reader<BackupKeyRow>('backup_key').orderBy('id', 'desc').first();
    return row ? { publicKey: Buffer.from(row.public_key), record: Buffer.from(row.record) } : null;
  }

  /**
   * A new backup key and every live DEK's copy sealed to it, in one transaction; the old backup key
   * is deleted with it, so the password that opened it opens nothing in this database any more.
   */
  async replaceBackupKey(key: BackupKeyRecord, copies: ReadonlyMap<string, Buffer>): Promise<void> {
    try {
      await this.db.transaction(async (trx) => {
        await trx('backup_key').delete();
        await trx('backup_key').insert({ public_key: key.publicKey, record: key.record, created_at: now() });
        for (const [dekKeyId, copy] of copies) await updateRow(trx, dekKeyId, { backup_copy: copy });
      });
    } finally {
      this.cache.invalidate();
    }
  }

  /** The current recovery share set, or null when none was made. */
  async recoveryShareSet(): Promise<RecoveryShareSetRecord | null> {
    const row = await this.reader<RecoveryShareSetRow>('recovery_share_sets').orderBy('id', 'desc').first();
    return row
      ? {
          shareSetId: row.share_set_id,
          shares: Number(row.shares),
          threshold: Number(row.threshold),
          publicKey: Buffer.from(row.public_key),
          commitments: Buffer.from(row.commitments),
          createdAt: row.created_at,
        }
      : null;
  }

  /**
   * A new share set and every live DEK's recovery copy sealed to it, in one transaction; the old
   * set and every copy sealed to it go with it, so the old shares recover nothing any more.
   */
  async replaceRecoveryShareSet(set: Omit<RecoveryShareSetRecord, 'createdAt'>, copies: ReadonlyMap<string, Buffer>): Promise<void> {
    try {
      await this.db.transaction(async (trx) => {
        await trx('recovery_share_sets').delete();
        await trx('key_material').update({ recovery_copy: null });
        await trx('recovery_share_sets').insert({
          share_set_id: set.shareSetId,
          shares: set.shares,
          threshold: set.threshold,
          public_key: set.publicKey,
          commitments: set.commitments,
          created_at: now(),
        });
        for (const [dekKeyId, copy] of copies) await updateRow(trx, dekKeyId, { recovery_copy: copy });
      });
    } finally {
      this.cache.invalidate();
    }
  }

  /** Makes `dekKeyId` the primary and the former primary active, in one transaction. */
  async promote(dekKeyId: string): Promise<void> {
    try {
      await this.db.transaction(async (trx) => {
        const target = await trx<KeyMaterialRow>('key_material').where({ dek_key_id: dekKeyId }).first();
        if (!target || target.state === 'retired') throw new KeyCustodyError('DEK_UNAVAILABLE', `DEK ${dekKeyId} is not in the keyset: it cannot be promoted`);
        const at = now();
        await trx('key_material').where({ state: 'primary' }).whereNot({ dek_key_id: dekKeyId }).update({ state: 'active', updated_at: at });
        await trx('key_material').where({ dek_key_id: dekKeyId }).update({ state: 'primary', updated_at: at });
      });
    } finally {
      this.cache.invalidate();
    }
  }

  /**
   * Retires DEKs no value uses any more: their wrapped and backup copies are wiped, the row stays
   * (key id, counts, dates) for the record. `inTransaction` runs first in the same transaction.
   */
  async retire(dekKeyIds: readonly string[], inTransaction?: (trx: Knex.Transaction) => Promise<void>): Promise<void> {
    try {
      await this.db.transaction(async (trx) => {
        await inTransaction?.(trx);
        const at = now();
        await trx('key_material')
          .whereIn('dek_key_id', [...dekKeyIds])
          .whereNot({ state: 'primary' })
          .update({ state: 'retired', wrapped_dek: null, backup_copy: null, recovery_copy: null, retired_at: at, updated_at: at });
      });
    } finally {
      this.cache.invalidate();
    }
  }

  /**
   * Counts encryptions under `dekKeyId` inside the write's transaction, and fences it: the write
   * commits only while that DEK is still the primary. A process whose keyring missed a promotion
   * (another process rotated) gets DEK_NOT_PRIMARY and re-seals with the new primary.
   */
  async addEncryptions(dekKeyId: string, count: number, trx: Knex = this.db): Promise<void> {
    if (count === 0) return;
    let changed: number;
    try {
      changed = await trx('key_material').where({ dek_key_id: dekKeyId, state: 'primary' }).increment('gcm_encryptions', count);
    } finally {
      this.cache.invalidateAfter(trx === this.db ? undefined : trx);
    }
    if (changed !== 1) throw new KeyCustodyError('DEK_NOT_PRIMARY', `DEK ${dekKeyId} is no longer the primary DEK: another process rotated the keyset`);
  }

  private async update(dekKeyId: string, columns: Record<string, unknown>): Promise<void> {
    try {
      await updateRow(this.db, dekKeyId, columns);
    } finally {
      this.cache.invalidate();
    }
  }
}

async function updateRow(db: Knex, dekKeyId: string, columns: Record<string, unknown>): Promise<void> {
  const changed = await db('key_material')
    .where({ dek_key_id: dekKeyId })
    .update({ ...columns, updated_at: now() });
  if (changed !== 1) throw new Error(`no key material with DEK key id ${dekKeyId}`);
}

function recordOf(row: KeyMaterialRow): KeyMaterialRecord {
  // A row from before keysets (migration 010) is the one DEK there was: the primary.
  // wrappedColumns() writes the mechanism and the KEK's label together with the blob.
  const wrapped: WrappedKey | null =
    row.wrapped_dek === null ? null : { mechanism: row.wrap_mechanism as WrapMechanism, kek: { label: row.kek_label as string, id: row.kek_id ?? '' }, blob: Buffer.from(row.wrapped_dek) };
  return {
    dekKeyId: row.dek_key_id,
    state: (row.state ?? 'primary') as DekState,
    wrapped,
    backupCopy: row.backup_copy === null ? null : Buffer.from(row.backup_copy),
    recoveryCopy: row.recovery_copy ? Buffer.from(row.recovery_copy) : null,
    gcmEncryptions: Number(row.gcm_encryptions),
    createdAt: row.created_at,
    kekCreatedAt: row.kek_created_at ?? row.created_at,
    retiredAt: row.retired_at ?? null,
  };
}

function copyOf(record: KeyMaterialRecord): KeyMaterialRecord {
  return {
    ...record,
    wrapped: record.wrapped && { ...record.wrapped, kek: { ...record.wrapped.kek }, blob: Buffer.from(record.wrapped.blob) },
    backupCopy: record.backupCopy && Buffer.from(record.backupCopy),
    recoveryCopy: record.recoveryCopy && Buffer.from(record.recoveryCopy),
  };
}

function wrappedColumns(wrapped: WrappedKey): Record<string, unknown> {
  return { wrapped_dek: wrapped.blob, wrap_mechanism: wrapped.mechanism, kek_label: wrapped.kek.label, kek_id: wrapped.kek.id };
}
