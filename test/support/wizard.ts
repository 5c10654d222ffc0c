import { join } from 'node:path';
import { Store } from '../../db/store';
import { KeyCustody } from '../../effects/key-custody';
import { MINIMUM_KDF } from '../../crypto/backup-copy';
import { DekKeyring } from '../../crypto/dek-keyring';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import type { CliHome } from './cli';
import { newSecret } from './secrets';
import { setNativeEnv, SOFTHSM_MODULE } from './softhsm';

export const SOFTHSM_SETUP = { hsmType: 'softhsm', modulePath: SOFTHSM_MODULE, label: 'Trustpoint-SoftHSM' };

export interface WizardSecrets {
  pin: string;
  soPin: string;
  backup: string;
  admin: string;
}

export function wizardSecrets(): WizardSecrets {
  return { pin: newSecret('pin'), soPin: newSecret('sopin'), backup: `Bk-${newSecret('backup')}`, admin: `Ad-${newSecret('admin')}` };
}

/** The whole SoftHSM wizard through the real CLI, every step checked; demo data added or skipped. */
export function completeSoftHsmWizard(cli: CliHome, secrets: WizardSecrets, options: { demoData?: boolean } = {}): void {
  const steps: Array<[string, Record<string, unknown> | undefined, Record<string, string>]> = [
    ['SELECT_STORAGE', { storageType: 'softhsm' }, {}],
    ['SETUP_HSM', SOFTHSM_SETUP, { pin: secrets.pin, soPin: secrets.soPin }],
    ['CHOOSE_FRESH', undefined, {}],
    ['GENERATE_TLS', { subjectAltNames: ['localhost', '127.0.0.1'] }, {}],
    ['APPLY_TLS', undefined, {}],
    ['SET_BACKUP_PASSWORD', undefined, { password: secrets.backup }],
    [options.demoData ? 'ADD_DEMO_DATA' : 'SKIP_DEMO_DATA', undefined, {}],
    ['CREATE_ADMIN', { username: 'admin' }, { password: secrets.admin }],
  ];
  for (const [event, payload, given] of steps) {
    const run = cli.send(event, payload, given);
    if (run.status !== 0) throw new Error(`${event} exited ${run.status}: ${run.stderr}`);
  }
}

/**
 * Reads or writes a CLI home's data as any keyward process would: the DEK unwrapped with the KEK
 * in its token (this process's SoftHSM configuration is pointed at the home's first).
 */
export async function withStore<T>(cli: CliHome, fn: (store: Store, keyring: DekKeyring) => Promise<T>): Promise<T> {
  setNativeEnv('SOFTHSM2_CONF', cli.env.SOFTHSM2_CONF!);
  Pkcs11Module.open(SOFTHSM_MODULE).refresh();
  const keyring = new DekKeyring();
  const database = cli.env.DATABASE_URL
    ? ({ client: 'pg', connectionString: cli.env.DATABASE_URL } as const)
    : ({ client: 'sqlite', filename: cli.env.KEYWARD_SQLITE ?? join(cli.home, 'keyward.sqlite') } as const);
  const store = Store.open(database, keyring);
  try {
    await new KeyCustody(store, keyring, { secretsDir: join(cli.home, 'secrets'), kekLabel: 'trustpoint-kek', kdf: MINIMUM_KDF }).ensureDek();
    return await fn(store, keyring);
  } finally {
    keyring.clear();
    await store.close();
  }
}
