import { join } from 'node:path';
import type { Store } from '../db/store';
import type { KdfParams } from '../crypto/backup-copy';
import { DekKeyring } from '../crypto/dek-keyring';
import { KeyCustodyError } from '../errors/key-custody-error';
import { KeyHierarchy } from '../hsm/key-hierarchy';
import { parsePinSource } from '../hsm/pin-source';
import { Pkcs11KeyWrapper } from '../hsm/pkcs11-key-wrapper';
import { Pkcs11Token } from '../hsm/pkcs11-token';
import { isHsmStorage } from '../hsm/storage-type';
import { RecoveryShareCollector } from './recovery-share-collector';

const USER_PIN_FILE = 'hsm-user-pin';

export interface CustodyConfig {
  secretsDir: string;
  kekLabel: string;
  kdf: KdfParams;
  /** Highest Argon2id parameters a stored backup copy may ask for (default: DEFAULT_KDF_CEILING). */
  kdfCeiling?: KdfParams;
  /** How long recovery shares typed in during auto-restore are kept (default 900 s). */
  recoveryShareTtlSeconds?: number;
}

/**
 * The key hierarchy of one process: the store, the DEK keyring (memory only) and the token the
 * database names. Every entry point and effect of a process shares one.
 */
export class KeyCustody {
  readonly hierarchy: KeyHierarchy;
  /** Recovery shares typed in during auto-restore: this process's memory only. */
  readonly recoveryShares: RecoveryShareCollector;

  constructor(
    readonly store: Store,
    readonly keyring: DekKeyring,
    readonly config: CustodyConfig,
  ) {
    this.hierarchy = new KeyHierarchy(store.keyMaterial, keyring, config.kdf, config.kdfCeiling);
    store.secrets.reloadKeyset = () => this.reloadKeyset();
    this.recoveryShares = new RecoveryShareCollector((config.recoveryShareTtlSeconds ?? 900) * 1000);
  }

  get userPinFile(): string {
    return join(this.config.secretsDir, USER_PIN_FILE);
  }

  /** The user PIN's source as the database records it: relative to the secrets directory. */
  get userPinSource(): string {
    return `secrets:${USER_PIN_FILE}`;
  }

  /** The configured token, or null before the wizard's HSM step. */
  async token(): Promise<Pkcs11Token | null> {
    const config = await this.store.storage.token();
    if (!config) return null;
    return new Pkcs11Token({ modulePath: config.modulePath, tokenLabel: config.tokenLabel, kekLabel: config.kekLabel, pin: parsePinSource(config.pinSource, this.config.secretsDir) });
  }

  async requireToken(): Promise<Pkcs11Token> {
    const token = await this.token();
    if (!token) throw new KeyCustodyError('TOKEN_MISSING', 'no PKCS#11 token is configured: complete the HSM set-up step');
    return token;
  }

  /** The KEK the stored wraps name (by CKA_ID: during a KEK rotation two carry the label), or the only one. */
  async wrapper(): Promise<Pkcs11KeyWrapper> {
    const kekId = (await this.store.keyMaterial.current())?.wrapped?.kek.id || undefined;
    return new Pkcs11KeyWrapper(await this.requireToken(), { kekId });
  }

  /** The second KEK's token (docs/lifecycle.md "A second KEK"), or null when none is configured. */
  async secondToken(): Promise<Pkcs11Token | null> {
    const config = await this.store.secondKek.config();
    if (!config) return null;
    return new Pkcs11Token({ modulePath: config.modulePath, tokenLabel: config.tokenLabel, kekLabel: config.kekLabel, pin: parsePinSource(config.pinSource, this.config.secretsDir) });
  }

  /** The second KEK, by the CKA_ID recorded when it was added, or null when none is configured. */
  async secondWrapper(): Promise<Pkcs11KeyWrapper | null> {
    const config = await this.store.secondKek.config();
    const token = await this.secondToken();
    return config && token && new Pkcs11KeyWrapper(token, { kekId: config.kekId });
  }

  /** Unwraps the keyset with the second KEK's wraps; KEK_MISSING when one is not configured. */
  async unwrapKeysetWithSecondKek(): Promise<string> {
    const wrapper = await this.secondWrapper();
    if (!wrapper) throw new KeyCustodyError('KEK_MISSING', 'no second KEK is configured');
    const wraps = await this.store.secondKek.wraps();
    return this.hierarchy.unwrapKeysetFrom(wrapper, (record) => wraps.get(record.dekKeyId));
  }

  /**
   * Vault's multi-wrapper: the keyset unwraps with the primary KEK, or, when that fails and a second
   * KEK is configured, with the second one. The primary's error is the one reported when both fail.
   */
  async unwrapKeysetWithAnyKek(): Promise<'primary' | 'second'> {
    try {
      await this.hierarchy.unwrapKeyset(await this.wrapper());
      return 'primary';
    } catch (error) {
      if (!(await this.store.secondKek.config().catch(() => null))) throw error;
      try {
        await this.unwrapKeysetWithSecondKek();
      } catch {
        throw error;
      }
      return 'second';
    }
  }

  /**
   * Makes sure this process holds the DEK when storage is an HSM: another process (the CLI, another
   * replica) may have created or recovered it; this one unwraps it with the KEK.
   */
  async ensureDek(): Promise<void> {
    if (this.keyring.current !== null) return;
    if (!isHsmStorage(await this.store.storage.storageType())) return;
    if (!(await this.store.keyMaterial.current())) return;
    await this.unwrapKeysetWithAnyKek();
  }

  /**
   * Brings a loaded keyring up to the stored keyset: another process (the CLI, a replica) may have
   * added, promoted or retired a DEK. Only DEKs this keyring lacks are unwrapped.
   */
  async reloadKeyset(): Promise<void> {
    if (this.keyring.current === null || !isHsmStorage(await this.store.storage.storageType())) return;
    this.store.keyMaterial.forgetReadings();
    await this.unwrapKeysetWithAnyKek();
  }
}
