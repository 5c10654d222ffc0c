import { KeyCustodyError } from '../errors/key-custody-error';
import { createBackupCopy, DEFAULT_KDF, DEFAULT_KDF_CEILING, KdfParams, openBackupCopy, readBackupCopyParams } from '../crypto/backup-copy';
import { Dek, DekKeyring, generateDek } from '../crypto/dek-keyring';
import type { KeyWrapper, WrappedKey } from './key-wrapper';

/** What the database keeps of the hierarchy; the DEK itself is never in it. */
export interface KeyMaterialRecord {
  dekKeyId: string;
  wrapped: WrappedKey | null;
  backupCopy: Buffer | null;
  gcmEncryptions: number;
}

/** Persistence port of the hierarchy, implemented by db/repositories/key-material-repository. */
export interface KeyMaterialStore {
  current(): Promise<KeyMaterialRecord | null>;
  create(dekKeyId: string, wrapped: WrappedKey): Promise<void>;
  replaceWrapped(dekKeyId: string, wrapped: WrappedKey): Promise<void>;
  setBackupCopy(dekKeyId: string, copy: Buffer): Promise<void>;
}

/**
 * The key hierarchy (docs/formats.md): a KEK (behind a KeyWrapper) wraps the DEK; a backup password
 * opens a second copy of it; the DEK, once unwrapped or recovered, lives only in the keyring.
 * Every operation can run again after a crash and reach the same end.
 */
export class KeyHierarchy {
  constructor(
    private readonly store: KeyMaterialStore,
    readonly keyring: DekKeyring,
    private readonly kdf: KdfParams = DEFAULT_KDF,
    /** The most a stored backup copy may ask of Argon2id before this process refuses to open it. */
    private readonly kdfCeiling: KdfParams = DEFAULT_KDF_CEILING,
  ) {}

  /** Creates and wraps the DEK, or, when one was already stored, loads that one. */
  async createDek(wrapper: KeyWrapper): Promise<string> {
    const existing = await this.store.current();
    if (existing) {
      await this.unwrapDek(wrapper);
      return existing.dekKeyId;
    }
    const dek = generateDek();
    try {
      await this.store.create(dek.keyId, await wrapper.wrap(dek.key));
      this.keyring.install(dek, 0);
      return dek.keyId;
    } finally {
      dek.key.fill(0);
    }
  }

  /** Unwraps the stored DEK with the KEK into the keyring. */
  async unwrapDek(wrapper: KeyWrapper): Promise<string> {
    const record = await this.requireRecord();
    if (!record.wrapped) throw new KeyCustodyError('KEK_MISSING', 'no wrapped DEK is stored: recover the DEK with the backup password');
    const key = await wrapper.unwrap(record.wrapped);
    this.installRecovered({ keyId: record.dekKeyId, key }, record);
    return record.dekKeyId;
  }

  async setBackupPassword(password: string): Promise<void> {
    const record = await this.requireRecord();
    const key = this.keyring.key(record.dekKeyId);
    await this.store.setBackupCopy(record.dekKeyId, await createBackupCopy({ keyId: record.dekKeyId, key }, password, this.kdf, this.kdfCeiling));
  }

  /** Opens the backup copy with the password; a wrong password changes nothing. */
  async recoverWithPassword(password: string): Promise<string> {
    const record = await this.requireRecord();
    if (!record.backupCopy) {
      throw new KeyCustodyError('BACKUP_COPY_MISSING', 'no backup copy of the DEK is stored: the DEK cannot be recovered with a password');
    }
    const dek = await openBackupCopy(record.backupCopy, password, this.kdfCeiling);
    try {
      this.installRecovered(dek, record);
    } finally {
      dek.key.fill(0);
    }
    // Raise the stored KDF parameters to today's, now that the password is at hand.
    const stored = readBackupCopyParams(record.backupCopy);
    if (stored.memoryKiB < this.kdf.memoryKiB || stored.iterations < this.kdf.iterations) await this.setBackupPassword(password);
    return record.dekKeyId;
  }

  /** Wraps the loaded DEK under the wrapper's KEK and stores that, replacing the old wrap. */
  async rewrap(wrapper: KeyWrapper): Promise<void> {
    const record = await this.requireRecord();
    const wrapped = await wrapper.wrap(this.keyring.key(record.dekKeyId));
    await this.store.replaceWrapped(record.dekKeyId, wrapped);
  }

  lock(): void {
    this.keyring.clear();
  }

  private installRecovered(dek: Dek, record: KeyMaterialRecord): void {
    if (dek.keyId !== record.dekKeyId) {
      throw new KeyCustodyError('DEK_KEY_ID_MISMATCH', `recovered DEK ${dek.keyId} is not the stored DEK ${record.dekKeyId}`);
    }
    this.keyring.install(dek, record.gcmEncryptions);
  }

  private async requireRecord(): Promise<KeyMaterialRecord> {
    const record = await this.store.current();
    if (!record) throw new KeyCustodyError('DEK_UNAVAILABLE', 'no DEK has been created yet');
    return record;
  }
}
