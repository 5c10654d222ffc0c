import type { Knex } from 'knex';
import type { DekKeyring } from '../crypto/dek-keyring';
import { ConfigCache } from './config-cache';
import { DekReencryption } from './dek-reencryption';
import { DatabaseConfig, openDatabase, openReader } from './database';
import { AdminUserRepository } from './repositories/admin-user-repository';
import { AppVersionRepository } from './repositories/app-version-repository';
import { CaRepository } from './repositories/ca-repository';
import { CanaryRepository } from './repositories/canary-repository';
import { CredentialRepository } from './repositories/credential-repository';
import { DeviceRepository } from './repositories/device-repository';
import { KeyMaterialRepository } from './repositories/key-material-repository';
import { LifecycleRepository } from './repositories/lifecycle-repository';
import { LogChainKeyRepository } from './repositories/log-chain-key-repository';
import { SecondKekRepository } from './repositories/second-kek-repository';
import { StorageConfigRepository } from './repositories/storage-config-repository';
import { TlsCredentialRepository } from './repositories/tls-credential-repository';
import { WebSecretRepository } from './repositories/web-secret-repository';
import { SecretFields } from './secret-fields';

export { WebSessionRepository } from './repositories/web-session-repository';
export { SetupCodeRepository } from './repositories/setup-code-repository';
export { RateLimitRepository } from './repositories/rate-limit-repository';

/**
 * Every repository over one database (a writer, and readers for reads outside transactions); the
 * one thing callers need from db/.
 */
export class Store {
  readonly appVersion: AppVersionRepository;
  readonly storage: StorageConfigRepository;
  readonly keyMaterial: KeyMaterialRepository;
  readonly secrets: SecretFields;
  readonly devices: DeviceRepository;
  readonly credentials: CredentialRepository;
  readonly cas: CaRepository;
  readonly tls: TlsCredentialRepository;
  readonly admins: AdminUserRepository;
  readonly lifecycle: LifecycleRepository;
  readonly canary: CanaryRepository;
  readonly reencryption: DekReencryption;
  readonly logChainKeys: LogChainKeyRepository;
  /** The keys the web processes share (the CSRF key): here because the DEK's creation replaces them. */
  readonly webSecrets: WebSecretRepository;
  /** The second KEK: its token, its wrap of every live DEK, each KEK's health. */
  readonly secondKek: SecondKekRepository;
  /** Storage type, token configuration and key material between lifecycle versions (off until enabled). */
  readonly cache = new ConfigCache();

  constructor(
    readonly db: Knex,
    keyring: DekKeyring,
    readonly reader: Knex = db,
  ) {
    this.appVersion = new AppVersionRepository(db);
    this.storage = new StorageConfigRepository(db, reader, this.cache);
    this.keyMaterial = new KeyMaterialRepository(db, reader, this.cache);
    this.secrets = new SecretFields(this.storage, this.keyMaterial, keyring);
    this.devices = new DeviceRepository(db, this.secrets);
    this.credentials = new CredentialRepository(db, this.secrets);
    this.cas = new CaRepository(db);
    this.tls = new TlsCredentialRepository(db, this.secrets);
    this.admins = new AdminUserRepository(db);
    this.lifecycle = new LifecycleRepository(db, reader);
    this.canary = new CanaryRepository(db, this.secrets);
    this.reencryption = new DekReencryption(db, reader, this.secrets, this.keyMaterial, keyring);
    this.logChainKeys = new LogChainKeyRepository(reader, this.secrets);
    this.webSecrets = new WebSecretRepository(db, this.secrets);
    this.secondKek = new SecondKekRepository(db, reader, this.cache);
  }

  static open(config: DatabaseConfig, keyring: DekKeyring): Store {
    const db = openDatabase(config);
    return new Store(db, keyring, openReader(config, db));
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
