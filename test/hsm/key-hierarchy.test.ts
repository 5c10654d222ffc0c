import { Store } from '../../db/store';
import { migrateToLatest } from '../../db/database';
import { DekKeyring } from '../../crypto/dek-keyring';
import { KeyHierarchy } from '../../hsm/key-hierarchy';
import { Pkcs11KeyWrapper } from '../../hsm/pkcs11-key-wrapper';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { Pkcs11Token } from '../../hsm/pkcs11-token';
import { engines, freshDatabase, TestDatabase } from '../support/databases';
import { newSecret } from '../support/secrets';
import { SoftHsm, SOFTHSM_MODULE } from '../support/softhsm';

describe.each(engines())('the key hierarchy on a real SoftHSM2 token and %s', (engine) => {
  let database: TestDatabase;
  let store: Store;
  let keyring: DekKeyring;
  let hierarchy: KeyHierarchy;
  let hsm: SoftHsm;
  const password = newSecret('backup-password');
  const estPassword = newSecret('est');

  beforeAll(async () => {
    database = await freshDatabase(engine, 'hierarchy');
    keyring = new DekKeyring();
    store = Store.open(database.config, keyring);
    await migrateToLatest(store.db);
    await store.storage.setStorageType('softhsm');
    hierarchy = new KeyHierarchy(store.keyMaterial, keyring);
    hsm = new SoftHsm(`hierarchy-${engine}`);
  });

  afterAll(async () => {
    await store.close();
    await database.drop();
  });

  const wrapperFor = (label: string) => {
    const token = hsm.initToken(label);
    Pkcs11Module.open(SOFTHSM_MODULE).refresh();
    const pkcs11 = new Pkcs11Token(token.config);
    pkcs11.generateKek();
    return new Pkcs11KeyWrapper(pkcs11);
  };

  it('creates the DEK under the KEK, a backup copy under the password, and encrypts a device with it', async () => {
    const wrapper = wrapperFor('FirstToken');
    const keyId = await hierarchy.createDek(wrapper);
    expect(await hierarchy.createDek(wrapper)).toBe(keyId); // again after a crash: the same DEK, not a new one
    await hierarchy.setBackupPassword(password);
    const record = await store.keyMaterial.current();
    expect(record).toMatchObject({ dekKeyId: keyId, wrapped: { mechanism: 'CKM_AES_KEY_WRAP', kek: await wrapper.keyId() } });
    expect(record!.wrapped!.blob).toHaveLength(40);
    expect(record!.backupCopy).toHaveLength(120); // KWD1, sealed to the backup key
    expect((await store.keyMaterial.backupKey())!.record).toHaveLength(147);
    await store.devices.create({ name: 'dev', estPassword });
  });

  it('unwraps the DEK again with the KEK after the cache is cleared', async () => {
    hierarchy.lock();
    await expect(store.devices.findByName('dev')).rejects.toMatchObject({ code: 'DEK_UNAVAILABLE' });
    const token = new Pkcs11Token({ ...(await tokenConfigOf('FirstToken')) });
    await hierarchy.unwrapKeyset(new Pkcs11KeyWrapper(token));
    expect((await store.devices.findByName('dev'))!.estPassword).toBe(estPassword);
  });

  it('recovers the DEK with the password after the token is lost, and re-wraps it under a new KEK', async () => {
    hsm.deleteAllTokens();
    hierarchy.lock();
    const before = await store.keyMaterial.current();
    await expect(hierarchy.recoverWithPassword(newSecret('wrong'))).rejects.toMatchObject({ code: 'WRONG_BACKUP_PASSWORD' });
    expect(await store.keyMaterial.current()).toEqual(before);
    expect(keyring.current).toBeNull();

    await hierarchy.recoverWithPassword(password);
    const wrapper = wrapperFor('SecondToken');
    await hierarchy.rewrap(wrapper);
    const after = await store.keyMaterial.current();
    expect(after!.dekKeyId).toBe(before!.dekKeyId);
    expect(after!.wrapped!.kek).toEqual(await wrapper.keyId());
    expect(after!.wrapped!.kek.id).not.toBe(before!.wrapped!.kek.id);
    expect(after!.backupCopy).toEqual(before!.backupCopy);

    hierarchy.lock();
    await hierarchy.unwrapKeyset(wrapper);
    expect((await store.devices.findByName('dev'))!.estPassword).toBe(estPassword);
  });

  it('refuses to recover without a backup copy', async () => {
    const other = new KeyHierarchy(
      {
        keyset: async () => [{ dekKeyId: '00'.repeat(8), state: 'primary', wrapped: null, backupCopy: null, gcmEncryptions: 0, createdAt: '', kekCreatedAt: '', retiredAt: null }],
        current: async () => null,
        create: async () => {},
        replaceAllWrapped: async () => {},
        backupKey: async () => null,
        replaceBackupKey: async () => {},
        promote: async () => {},
        retire: async () => {},
        recoveryShareSet: async () => null,
        replaceRecoveryShareSet: async () => {},
      },
      new DekKeyring(),
    );
    await expect(other.recoverWithPassword(password)).rejects.toMatchObject({ code: 'BACKUP_COPY_MISSING' });
  });

  async function tokenConfigOf(label: string) {
    // Tokens made by this fixture keep their PIN in a file named after the label.
    return { modulePath: SOFTHSM_MODULE, tokenLabel: label, kekLabel: 'trustpoint-kek', pin: { file: `${hsm.dir}/${label}.pin` } };
  }
});
