import { KeyCustodyError } from '../errors/key-custody-error';
import { DEFAULT_KDF, DEFAULT_KDF_CEILING, KdfParams, openBackupCopy } from '../crypto/backup-copy';
import { backupCopyFormat, createBackupKey, openBackupKey, openDekCopy, readBackupKeyRecord, sealDekCopy } from '../crypto/backup-key';
import { Dek, DekKeyring, generateDek } from '../crypto/dek-keyring';
import { combineShares, createShareSet, RecoveryShare, RecoveryShareSetRecord } from '../crypto/recovery-shares';
import type { KeyWrapper, WrappedKey } from './key-wrapper';

/**
 * A DEK's place in the keyset (docs/formats.md §5): `pending` was added by a rotation and is not
 * written with yet; `primary` writes new values; `active` is still read; `retired` no value uses.
 */
export type DekState = 'pending' | 'primary' | 'active' | 'retired';

/** What the database keeps of one DEK; the DEK itself is never in it. */
export interface KeyMaterialRecord {
  dekKeyId: string;
  state: DekState;
  wrapped: WrappedKey | null;
  /** KWD1 (sealed to the backup key) or, written before keysets, KWB1 (under the password itself). */
  backupCopy: Buffer | null;
  /** KWD1 sealed to the recovery share set's public key; null when no set was made (or, written before 015, absent). */
  recoveryCopy?: Buffer | null;
  gcmEncryptions: number;
  createdAt: string;
  /** When the KEK that wraps it was made (the rotation policy's age). */
  kekCreatedAt: string;
  retiredAt: string | null;
}

/** The X25519 backup key (KWK1) that the backup password opens, and its public key. */
export interface BackupKeyRecord {
  publicKey: Buffer;
  record: Buffer;
}

/** Persistence port of the hierarchy, implemented by db/repositories/key-material-repository. */
export interface KeyMaterialStore {
  /** Every DEK not retired, the primary first. */
  keyset(): Promise<KeyMaterialRecord[]>;
  current(): Promise<KeyMaterialRecord | null>;
  create(dekKeyId: string, wrapped: WrappedKey, state?: DekState, backupCopy?: Buffer | null, recoveryCopy?: Buffer | null): Promise<void>;
  replaceAllWrapped(wraps: ReadonlyMap<string, WrappedKey>, kekCreatedAt: string): Promise<void>;
  backupKey(): Promise<BackupKeyRecord | null>;
  replaceBackupKey(key: BackupKeyRecord, copies: ReadonlyMap<string, Buffer>): Promise<void>;
  promote(dekKeyId: string): Promise<void>;
  retire(dekKeyIds: readonly string[]): Promise<void>;
  recoveryShareSet(): Promise<RecoveryShareSetRecord | null>;
  replaceRecoveryShareSet(set: Omit<RecoveryShareSetRecord, 'createdAt'>, copies: ReadonlyMap<string, Buffer>): Promise<void>;
}

/**
 * The key hierarchy (docs/formats.md): a KEK (behind a KeyWrapper) wraps every live DEK of the
 * keyset; the backup password opens the backup key, to which every live DEK is sealed; the DEKs,
 * once unwrapped or recovered, live only in the keyring. Every operation can run again after a
 * crash and reach the same end.
 */
export class KeyHierarchy {
  constructor(
    private readonly store: KeyMaterialStore,
    readonly keyring: DekKeyring,
    private readonly kdf: KdfParams = DEFAULT_KDF,
    /** The most a stored backup key may ask of Argon2id before this process refuses to open it. */
    private readonly kdfCeiling: KdfParams = DEFAULT_KDF_CEILING,
  ) {}

  /** Creates and wraps the first DEK, or, when one was already stored, loads the keyset. */
  async createDek(wrapper: KeyWrapper): Promise<string> {
    if ((await this.store.keyset()).length > 0) return this.unwrapKeyset(wrapper);
    const dek = generateDek();
    try {
      await this.store.create(dek.keyId, await wrapper.wrap(dek.key), 'primary');
      this.keyring.install(dek, 0);
      return dek.keyId;
    } finally {
      dek.key.fill(0);
    }
  }

  /** Unwraps every live DEK with the KEK into the keyring; returns the primary's key id. */
  async unwrapKeyset(wrapper: KeyWrapper): Promise<string> {
    return this.unwrapKeysetFrom(wrapper, (record) => record.wrapped);
  }

  /**
   * Unwraps every live DEK with a KEK whose wraps are kept elsewhere (the second KEK's, by DEK key
   * id); a DEK it holds no wrap of is KEK_MISSING. Returns the primary's key id.
   */
  async unwrapKeysetFrom(wrapper: KeyWrapper, wrapOf: (record: KeyMaterialRecord) => WrappedKey | null | undefined): Promise<string> {
    const keyset = await this.requireKeyset();
    for (const record of keyset) {
      const wrapped = wrapOf(record);
      if (!wrapped) throw new KeyCustodyError('KEK_MISSING', `no wrapped copy of DEK ${record.dekKeyId} is stored: recover the keyset with the backup password`);
      if (this.keyring.has(record.dekKeyId)) continue;
      const key = await wrapper.unwrap(wrapped);
      try {
        this.keyring.install({ keyId: record.dekKeyId, key }, record.gcmEncryptions, false);
      } finally {
        key.fill(0);
      }
    }
    return this.settleKeyring(keyset);
  }

  /** A new backup key for `password` (new salt, today's KDF parameters), every live DEK sealed to it. */
  async setBackupPassword(password: string): Promise<void> {
    const keyset = await this.requireKeyset();
    const key = await createBackupKey(password, this.kdf, this.kdfCeiling);
    const copies = new Map(keyset.map((record): [string, Buffer] => [record.dekKeyId, sealDekCopy({ keyId: record.dekKeyId, key: this.keyring.key(record.dekKeyId) }, key.publicKey)]));
    await this.store.replaceBackupKey(key, copies);
  }

  /**
   * Opens every live DEK's backup copy with the password; a wrong password changes nothing. Copies
   * in the one-DEK format (KWB1) and backup keys with weaker KDF parameters than today's are
   * rewritten now that the password is at hand.
   */
  async recoverWithPassword(password: string): Promise<string> {
    const keyset = await this.requireKeyset();
    const missing = keyset.filter((record) => !record.backupCopy);
    if (missing.length > 0) {
      throw new KeyCustodyError('BACKUP_COPY_MISSING', `no backup copy of DEK ${missing.map((r) => r.dekKeyId).join(', ')} is stored: the keyset cannot be recovered with a password`);
    }
    const recovered: Dek[] = [];
    let upgrade = false;
    try {
      const backupKey = await this.store.backupKey();
      const privateKey = keyset.some((r) => backupCopyFormat(r.backupCopy!) === 'KWD1') ? await this.openBackupKeyRecord(backupKey, password) : null;
      try {
        for (const record of keyset) {
          const copy = record.backupCopy!;
          let dek: Dek;
          if (backupCopyFormat(copy) === 'KWD1') {
            dek = openDekCopy(copy, privateKey!.key);
          } else {
            dek = await openBackupCopy(copy, password, this.kdfCeiling);
            upgrade = true;
          }
          recovered.push(dek);
          if (dek.keyId !== record.dekKeyId) throw new KeyCustodyError('DEK_KEY_ID_MISMATCH', `the backup copy of DEK ${record.dekKeyId} holds DEK ${dek.keyId}`);
        }
      } finally {
        privateKey?.key.wipe();
      }
      if (backupKey && weakerThan(readBackupKeyRecord(backupKey.record).params, this.kdf)) upgrade = true;
      for (const [index, dek] of recovered.entries()) this.keyring.install(dek, keyset[index]!.gcmEncryptions, false);
    } finally {
      for (const dek of recovered) dek.key.fill(0);
    }
    const primary = this.settleKeyring(keyset);
    if (upgrade) await this.setBackupPassword(password);
    return primary;
  }

  /** Checks a backup password against the stored copies without changing anything. */
  async verifyBackupPassword(password: string): Promise<void> {
    const keyset = await this.requireKeyset();
    const primary = keyset[0]!;
    if (!primary.backupCopy) throw new KeyCustodyError('BACKUP_COPY_MISSING', `no backup copy of DEK ${primary.dekKeyId} is stored`);
    if (backupCopyFormat(primary.backupCopy) === 'KWD1') {
      (await this.openBackupKeyRecord(await this.store.backupKey(), password)).key.wipe();
    } else {
      (await openBackupCopy(primary.backupCopy, password, this.kdfCeiling)).key.fill(0);
    }
  }

  /**
   * Wraps every live DEK under the wrapper's KEK and stores the wraps together, replacing the old
   * ones; each wrap is unwrapped once before the commit, so a KEK that cannot give the DEK back is
   * never the only one that holds it. Returns the key ids wrapped.
   */
  async rewrap(wrapper: KeyWrapper, kekCreatedAt: string = new Date().toISOString()): Promise<string[]> {
    const wraps = await this.wrapKeyset(wrapper);
    await this.store.replaceAllWrapped(wraps, kekCreatedAt);
    return [...wraps.keys()];
  }

  /**
   * Every live DEK (or those named) wrapped under the wrapper's KEK and unwrapped once to check it,
   * stored nowhere: the caller keeps the wraps (the second KEK's). Needs the keyset loaded.
   */
  async wrapKeyset(wrapper: KeyWrapper, only?: ReadonlySet<string>): Promise<Map<string, WrappedKey>> {
    const keyset = await this.requireKeyset();
    const wraps = new Map<string, WrappedKey>();
    for (const record of keyset) {
      if (only && !only.has(record.dekKeyId)) continue;
      const key = this.keyring.key(record.dekKeyId);
      const wrapped = await wrapper.wrap(key);
      const back = await wrapper.unwrap(wrapped);
      const same = back.equals(key);
      back.fill(0);
      if (!same) throw new KeyCustodyError('WRAPPED_BLOB_CORRUPT', `the KEK ${wrapped.kek.id} did not give DEK ${record.dekKeyId} back unchanged: nothing was stored`);
      wraps.set(record.dekKeyId, wrapped);
    }
    return wraps;
  }

  /**
   * Adds a DEK to the keyset, wrapped under the KEK and sealed to the backup key, not yet written
   * with. Run again after a crash, it loads the one an earlier run added instead of adding another.
   */
  async addDek(wrapper: KeyWrapper): Promise<{ keyId: string; reused: boolean }> {
    const keyset = await this.requireKeyset();
    const pending = keyset.find((record) => record.state === 'pending');
    if (pending) {
      await this.unwrapKeyset(wrapper);
      return { keyId: pending.dekKeyId, reused: true };
    }
    const backupKey = await this.store.backupKey();
    if (!backupKey) {
      throw new KeyCustodyError(
        'BACKUP_KEY_MISSING',
        'the backup copy is in the one-DEK format (KWB1): change the backup password once (`keyward password change`) so that new DEKs get a backup copy without it; nothing was changed',
      );
    }
    // The recovery copy comes along, like the backup copy, so the shares still recover every live DEK.
    const recoverySet = await this.store.recoveryShareSet();
    const dek = generateDek();
    try {
      await this.store.create(dek.keyId, await wrapper.wrap(dek.key), 'pending', sealDekCopy(dek, backupKey.publicKey), recoverySet && sealDekCopy(dek, recoverySet.publicKey));
      this.keyring.install(dek, 0, false);
      return { keyId: dek.keyId, reused: false };
    } finally {
      dek.key.fill(0);
    }
  }

  /**
   * A new recovery share set (docs/formats.md §6): a random recovery key split into `shares`, every
   * live DEK sealed to its public key, the old set and its copies deleted in the same commit. The
   * shares are returned to be shown once; neither they nor the key are kept anywhere.
   */
  async createRecoveryShares(shares: number, threshold: number): Promise<{ shareSetId: string; shares: string[]; dekKeyIds: string[] }> {
    const keyset = await this.requireKeyset();
    const set = await createShareSet(shares, threshold);
    const copies = new Map(keyset.map((record): [string, Buffer] => [record.dekKeyId, sealDekCopy({ keyId: record.dekKeyId, key: this.keyring.key(record.dekKeyId) }, set.record.publicKey)]));
    await this.store.replaceRecoveryShareSet(set.record, copies);
    return { shareSetId: set.record.shareSetId, shares: set.shares, dekKeyIds: [...copies.keys()] };
  }

  /**
   * Combines K checked shares and opens every live DEK's recovery copy into the keyring, as
   * recoverWithPassword does with the password; shares that do not combine change nothing.
   */
  async recoverWithShares(shares: readonly RecoveryShare[]): Promise<string> {
    const keyset = await this.requireKeyset();
    const set = await this.store.recoveryShareSet();
    if (!set) throw new KeyCustodyError('RECOVERY_SHARES_MISSING', 'no recovery share set has been made: the keyset cannot be recovered with shares');
    const missing = keyset.filter((record) => !record.recoveryCopy);
    if (missing.length > 0) {
      throw new KeyCustodyError('RECOVERY_SHARES_MISSING', `no recovery copy of DEK ${missing.map((r) => r.dekKeyId).join(', ')} is stored: the keyset cannot be recovered with shares`);
    }
    const privateKey = await combineShares(shares, set);
    const recovered: Dek[] = [];
    try {
      for (const record of keyset) {
        const dek = openDekCopy(record.recoveryCopy!, privateKey);
        recovered.push(dek);
        if (dek.keyId !== record.dekKeyId) throw new KeyCustodyError('DEK_KEY_ID_MISMATCH', `the recovery copy of DEK ${record.dekKeyId} holds DEK ${dek.keyId}`);
      }
      for (const [index, dek] of recovered.entries()) this.keyring.install(dek, keyset[index]!.gcmEncryptions, false);
    } finally {
      privateKey.wipe();
      for (const dek of recovered) dek.key.fill(0);
    }
    return this.settleKeyring(keyset);
  }

  /** Makes an added DEK the one new values are written with, here and (through the fence) everywhere. */
  async promote(dekKeyId: string): Promise<void> {
    await this.store.promote(dekKeyId);
    this.keyring.makeCurrent(dekKeyId);
  }

  /** Retires DEKs that no value uses any more; their copies are wiped and their bytes forgotten. */
  async retire(dekKeyIds: readonly string[]): Promise<void> {
    await this.store.retire(dekKeyIds);
    for (const keyId of dekKeyIds) this.keyring.forget(keyId);
  }

  lock(): void {
    this.keyring.clear();
  }

  /** The primary becomes current; DEKs no longer in the keyset (retired elsewhere) are forgotten. */
  private settleKeyring(keyset: KeyMaterialRecord[]): string {
    const primary = keyset.find((record) => record.state === 'primary') ?? keyset[0]!;
    this.keyring.makeCurrent(primary.dekKeyId);
    const live = new Set(keyset.map((record) => record.dekKeyId));
    for (const keyId of this.keyring.keyIds()) if (!live.has(keyId)) this.keyring.forget(keyId);
    return primary.dekKeyId;
  }

  private async openBackupKeyRecord(backupKey: BackupKeyRecord | null, password: string) {
    if (!backupKey) throw new KeyCustodyError('BACKUP_COPY_MISSING', 'the DEKs are sealed to a backup key that is not stored: the keyset cannot be recovered with a password');
    return { key: await openBackupKey(backupKey.record, password, this.kdfCeiling) };
  }

  private async requireKeyset(): Promise<KeyMaterialRecord[]> {
    const keyset = await this.store.keyset();
    if (keyset.length === 0) throw new KeyCustodyError('DEK_UNAVAILABLE', 'no DEK has been created yet');
    return keyset;
  }
}

function weakerThan(stored: KdfParams, today: KdfParams): boolean {
  return stored.memoryKiB < today.memoryKiB || stored.iterations < today.iterations;
}
