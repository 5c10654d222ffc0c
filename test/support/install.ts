import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DatabaseConfig } from '../../db/database';
import { DEFAULT_KDF_CEILING, MINIMUM_KDF } from '../../crypto/backup-copy';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import type { KeywardConfig } from '../../server/config';
import { PROJECT_ROOT } from '../../server/config';
import { DEFAULT_ROTATION_POLICY } from '../../server/rotation-policy';
import type { SendResult } from '../../server/lifecycle-engine';
import { KeywardRuntime } from '../../server/runtime';
import packageJson from '../../package.json';
import { freshDatabase, Engine, TestDatabase } from './databases';
import { testDir } from './run-dir';
import { newSecret, registerSecretSource } from './secrets';
import { setNativeEnv, SOFTHSM_MODULE, SoftHsm } from './softhsm';

export const TOKEN_LABEL = 'Trustpoint-SoftHSM';

/**
 * One keyward installation for in-process tests: its own home (token directory, TLS directory,
 * secrets), its own database, and a runtime that can be "restarted" (closed and opened again, with
 * an empty DEK keyring, as a new process would have).
 */
export class Install {
  runtime!: KeywardRuntime;
  readonly pin = newSecret('pin');
  readonly soPin = newSecret('sopin');
  readonly backupPassword = `Bk-${newSecret('backup')}`;
  readonly adminPassword = `Ad-${newSecret('admin')}`;
  readonly config: KeywardConfig;
  /** The PKCS#11 module and token label SETUP_HSM names (a physical HSM's may be another module). */
  hsmModule = SOFTHSM_MODULE;
  hsmLabel = TOKEN_LABEL;

  private constructor(
    readonly home: string,
    readonly database: TestDatabase,
  ) {
    mkdirSync(join(home, 'tokens'), { recursive: true });
    writeFileSync(join(home, 'softhsm2.conf'), `directories.tokendir = ${join(home, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    registerSecretSource(join(home, 'secrets', 'hsm-user-pin'));
    this.config = {
      appVersion: packageJson.version,
      home,
      database: database.config,
      deployment: 'default',
      tlsDir: join(home, 'tls'),
      secretsDir: join(home, 'secrets'),
      softhsmConf: join(home, 'softhsm2.conf'),
      pkcs11Module: SOFTHSM_MODULE,
      tokenLabel: TOKEN_LABEL,
      kekLabel: 'trustpoint-kek',
      host: '127.0.0.1',
      port: 0,
      defaultSubjectAltNames: ['localhost', '127.0.0.1'],
      scriptsDir: join(PROJECT_ROOT, 'scripts'),
      kdf: MINIMUM_KDF,
      kdfCeiling: DEFAULT_KDF_CEILING,
      outageRetrySeconds: 30,
      bootLeaseMs: 10_000,
      recoveryShareTtlSeconds: 900,
      rotation: DEFAULT_ROTATION_POLICY,
    };
    this.open();
  }

  static async create(name: string, engine: Engine = 'sqlite'): Promise<Install> {
    const home = testDir(`install-${name}`);
    return new Install(home, await freshDatabase(engine, name));
  }

  get tokenDir(): string {
    return join(this.home, 'tokens');
  }

  get databaseConfig(): DatabaseConfig {
    return this.database.config;
  }

  open(): void {
    setNativeEnv('SOFTHSM2_CONF', this.config.softhsmConf);
    this.runtime = new KeywardRuntime(this.config, { busyWaitMs: 1000 });
  }

  /** A process restart: the DEK keyring is empty again and the token is re-read from disk. */
  async restart(): Promise<void> {
    await this.runtime.close();
    this.open();
    Pkcs11Module.open(SOFTHSM_MODULE).refresh();
  }

  async close(): Promise<void> {
    await this.runtime.close();
    await this.database.drop();
  }

  boot(): Promise<SendResult> {
    return this.runtime.boot('test');
  }

  async send(type: string, payload: Record<string, unknown> = {}, secrets: Record<string, string> = {}): Promise<SendResult> {
    const result = await this.runtime.send(type, payload, secrets, 'test');
    return result;
  }

  async expectSend(type: string, payload: Record<string, unknown> = {}, secrets: Record<string, string> = {}): Promise<SendResult> {
    const result = await this.send(type, payload, secrets);
    if (result.outcome !== 'applied') throw new Error(`${type} → ${result.outcome}: ${result.message ?? ''} (state ${result.state})`);
    return result;
  }

  async state(): Promise<string> {
    return (await this.runtime.engine.inspect({ historyLimit: 0 })).state;
  }

  hsmSetupPayload(hsmType: 'softhsm' | 'physical' = 'softhsm') {
    return { hsmType, modulePath: this.hsmModule, label: this.hsmLabel };
  }

  hsmSecrets(hsmType: 'softhsm' | 'physical' = 'softhsm'): Record<string, string> {
    return hsmType === 'softhsm' ? { pin: this.pin, soPin: this.soPin } : { pin: this.pin };
  }

  /** Walks the wizard from crypto storage up to (not including) `stopBefore`, or to the end. */
  async walkWizard(storage: 'software' | 'softhsm' | 'physical_hsm', stopBefore?: 'setupMode' | 'tlsCredential' | 'backupPassword' | 'createAdmin'): Promise<void> {
    await this.expectSend('SELECT_STORAGE', { storageType: storage });
    if (storage !== 'software') {
      const hsmType = storage === 'softhsm' ? 'softhsm' : 'physical';
      await this.expectSend('SETUP_HSM', this.hsmSetupPayload(hsmType), this.hsmSecrets(hsmType));
    }
    if (stopBefore === 'setupMode') return;
    await this.expectSend('CHOOSE_FRESH');
    if (stopBefore === 'tlsCredential') return;
    await this.expectSend('GENERATE_TLS', { subjectAltNames: ['localhost', '127.0.0.1'] });
    await this.expectSend('APPLY_TLS');
    if (stopBefore === 'backupPassword') return;
    if (storage !== 'software') await this.expectSend('SET_BACKUP_PASSWORD', {}, { password: this.backupPassword });
    await this.expectSend('SKIP_DEMO_DATA');
    if (stopBefore === 'createAdmin') return;
    await this.expectSend('CREATE_ADMIN', { username: 'admin' }, { password: this.adminPassword });
  }

  /** All rows of every table but the lifecycle's own, for "nothing else changed". */
  async dumpData(): Promise<Record<string, unknown[]>> {
    const db = this.runtime.store.db;
    const tables = ['app_version', 'key_storage_config', 'pkcs11_token_config', 'key_material', 'tls_server_credentials', 'devices', 'credentials', 'cas', 'admin_users'];
    const dump: Record<string, unknown[]> = {};
    for (const table of tables) {
      if (!(await db.schema.hasTable(table))) continue;
      const rows = await db(table).orderBy('id');
      dump[table] = rows.map((row: Record<string, unknown>) =>
        Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString('hex') : typeof v === 'boolean' ? Number(v) : v])),
      );
    }
    return dump;
  }
}

/**
 * Points an install at a physical HSM's token, made beforehand with the vendor's tools (SoftHSM2
 * configured as a persistent module stands in), never by keyward; then boots it.
 */
export async function usePhysicalToken(i: Install, name: string): Promise<SoftHsm> {
  const hsm = new SoftHsm(name);
  i.config.softhsmConf = hsm.conf;
  await i.restart();
  const token = hsm.initToken(TOKEN_LABEL);
  Object.assign(i, { pin: token.pin });
  Pkcs11Module.open(SOFTHSM_MODULE).refresh();
  await i.boot();
  return hsm;
}
