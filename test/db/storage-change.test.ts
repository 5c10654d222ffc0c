import { randomBytes } from 'node:crypto';
import { migrateToLatest } from '../../db/database';
import { Store } from '../../db/store';
import { ValidationError } from '../../db/validation';
import { DekKeyring, generateDek } from '../../crypto/dek-keyring';
import type { WrappedKey } from '../../hsm/key-wrapper';
import { engines, freshDatabase, TestDatabase } from '../support/databases';
import { decryptPerDocs, SECRET_COLUMNS } from '../support/field-format';
import type { StoredField } from '../../crypto/field-codec';

const fakeWrap: WrappedKey = { mechanism: 'CKM_AES_KEY_WRAP', kek: { label: 'trustpoint-kek', id: 'ab'.repeat(16) }, blob: Buffer.alloc(40, 1) };
// Software storage keeps these in plaintext by design: random, but not registered with the secret scan.
const value = (name: string) => `${name}-${randomBytes(12).toString('hex')}`;
const pem = (name: string) => `-----BEGIN PRIVATE KEY-----\n${value(name)}\n-----END PRIVATE KEY-----\n`;
const TLS = { certificatePem: 'cert', chainPem: null, fingerprintSha256: 'AB', subjectAltNames: ['DNS:localhost'], notAfter: '2030-01-01T00:00:00.000Z', source: 'generated' as const };

/** Every stored secret value, raw. */
async function raw(store: Store): Promise<Array<{ table: string; column: string; value: Buffer }>> {
  const out: Array<{ table: string; column: string; value: Buffer }> = [];
  for (const [table, columns] of Object.entries(SECRET_COLUMNS)) {
    for (const row of await store.db(table).select<Array<Record<string, StoredField | null>>>(...columns))
      for (const column of columns) if (row[column] !== null) out.push({ table, column, value: Buffer.from(row[column]!) });
  }
  return out;
}

/**
 * The storage step converts what is already stored (docs/formats.md §4 holds for every row): a
 * wizard entered again after a restart may choose another storage type over existing rows.
 */
describe.each(engines())('changing the storage type over stored secrets (%s)', (engine) => {
  let database: TestDatabase;
  let store: Store;
  let keyring: DekKeyring;
  const est = value('est');

  beforeEach(async () => {
    database = await freshDatabase(engine, 'storage-change');
    keyring = new DekKeyring();
    store = Store.open(database.config, keyring);
    await migrateToLatest(store.db);
  });

  afterEach(async () => {
    keyring.clear();
    await store.close();
    await database.drop();
  });

  it('software → HSM without a DEK yet: the TLS credential is deleted, other values wait for the DEK and are sealed then', async () => {
    await store.secrets.changeStorageType('software');
    await store.tls.save({ ...TLS, privateKeyPem: pem('boot-key') }, { activate: true });
    await store.devices.create({ name: 'd', estPassword: est, cmpSharedSecret: null });
    await store.canary.reset();
    await store.secrets.changeStorageType('softhsm');
    const count = async (table: string) => Number((await store.db(table).count({ n: '*' }).first())!.n);
    expect(await count('tls_server_credentials')).toBe(0);
    expect(await count('custody_canary')).toBe(0);
    expect((await raw(store)).map((v) => v.value.toString('utf8'))).toEqual([est]);

    // What createDek does once the DEK exists.
    const dek = generateDek();
    await store.keyMaterial.create(dek.keyId, fakeWrap);
    keyring.install(dek);
    expect(await store.secrets.sealPlaintext()).toBe(1);
    expect(await store.secrets.sealPlaintext()).toBe(0);
    const [value] = await raw(store);
    expect(decryptPerDocs(value!.value, dek.key, 'devices', 'est_password')).toMatchObject({ version: 1, keyId: dek.keyId, value: est });
    expect((await store.devices.get((await store.devices.findByName('d'))!.id))!.estPassword).toBe(est);
    expect((await store.keyMaterial.current())!.gcmEncryptions).toBe(1);
  });

  it('HSM → software with the DEK opens every value; back to HSM seals them again', async () => {
    const dek = generateDek();
    await store.keyMaterial.create(dek.keyId, fakeWrap);
    keyring.install(dek);
    await store.secrets.changeStorageType('softhsm');
    const key = pem('tls-key');
    await store.tls.save({ ...TLS, privateKeyPem: key }, { activate: true });
    await store.devices.create({ name: 'd', estPassword: est, cmpSharedSecret: null });
    expect((await raw(store)).every((v) => v.value[0] === 1)).toBe(true);

    await store.secrets.changeStorageType('software');
    expect((await raw(store)).map((v) => v.value.toString('utf8')).sort()).toEqual([est, key].sort());
    expect((await store.tls.active())!.privateKeyPem).toBe(key);

    await store.secrets.changeStorageType('physical_hsm');
    for (const { table, column, value } of await raw(store)) expect(decryptPerDocs(value, dek.key, table, column).keyId).toBe(dek.keyId);
    expect((await store.tls.active())!.privateKeyPem).toBe(key);
  });

  it('HSM → software without the DEK is refused and changes nothing', async () => {
    const dek = generateDek();
    await store.keyMaterial.create(dek.keyId, fakeWrap);
    keyring.install(dek);
    await store.secrets.changeStorageType('softhsm');
    await store.tls.save({ ...TLS, privateKeyPem: pem('tls-key') }, { activate: true });
    await store.devices.create({ name: 'd', estPassword: est, cmpSharedSecret: null });
    const before = await raw(store);
    keyring.clear();
    await expect(store.secrets.changeStorageType('software')).rejects.toThrow(ValidationError);
    expect(await store.storage.storageType()).toBe('softhsm');
    expect(await raw(store)).toEqual(before);
  });
});
