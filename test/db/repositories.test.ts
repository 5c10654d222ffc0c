import { readFileSync } from 'node:fs';
import { isSchemaPresent, migrateToLatest, pendingMigrations } from '../../db/database';
import { migrationSource } from '../../db/migrations';
import { Store, WebSessionRepository } from '../../db/store';
import { ValidationError } from '../../db/validation';
import { DekKeyring, generateDek } from '../../crypto/dek-keyring';
import type { WrappedKey } from '../../hsm/key-wrapper';
import { engines, freshDatabase, TestDatabase } from '../support/databases';
import { newSecret } from '../support/secrets';
import type { CredentialRow, DeviceRow, TlsCredentialRow } from '../../db/rows';

const fakeWrap = (byte: number): WrappedKey => ({ mechanism: 'CKM_AES_KEY_WRAP', kek: { label: 'trustpoint-kek', id: 'ab'.repeat(16) }, blob: Buffer.alloc(40, byte) });

describe.each(engines())('repositories on %s', (engine) => {
  let database: TestDatabase;
  let store: Store;
  let keyring: DekKeyring;

  beforeAll(async () => {
    database = await freshDatabase(engine, 'repos');
    keyring = new DekKeyring();
    store = Store.open(database.config, keyring);
  });

  afterAll(async () => {
    await store.close();
    await database.drop();
  });

  it('migrates an empty database, and a second run applies nothing', async () => {
    expect(await isSchemaPresent(store.db)).toBe(false);
    const all = await migrationSource.getMigrations([]);
    // Numbered from 001 without a gap, run in that order (the last one is the schema version archives record).
    expect(all).toEqual(all.map((_, i) => expect.stringMatching(new RegExp(`^${String(i + 1).padStart(3, '0')}_`))));
    expect(all.slice(0, 2)).toEqual(['001_initial', '002_admin_users']);
    expect(await pendingMigrations(store.db)).toEqual(all);
    expect(await migrateToLatest(store.db)).toEqual(all);
    expect(await isSchemaPresent(store.db)).toBe(true);
    expect(await migrateToLatest(store.db)).toEqual([]);
  });

  it('records the app version and the storage configuration', async () => {
    expect(await store.appVersion.get()).toBeNull();
    await store.appVersion.set('1.2.3');
    await store.appVersion.set('1.2.4');
    expect(await store.appVersion.get()).toBe('1.2.4');
    expect(await store.storage.storageType()).toBeNull();
    await store.storage.setStorageType('softhsm');
    expect(await store.storage.storageType()).toBe('softhsm');
    const token = { hsmType: 'softhsm' as const, modulePath: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'Trustpoint-SoftHSM', kekLabel: 'trustpoint-kek', slot: null, pinSource: 'file:/var/pin' };
    await store.storage.setToken(token);
    expect(await store.storage.token()).toEqual(token);
  });

  it('keeps key material: wrapped DEK, its mechanism and KEK, the backup copy', async () => {
    expect(await store.keyMaterial.current()).toBeNull();
    const dek = generateDek();
    await store.keyMaterial.create(dek.keyId, fakeWrap(1));
    await store.keyMaterial.setBackupCopy(dek.keyId, Buffer.alloc(123, 5));
    await store.keyMaterial.replaceWrapped(dek.keyId, fakeWrap(2));
    const record = await store.keyMaterial.current();
    expect(record).toMatchObject({ dekKeyId: dek.keyId, state: 'primary', wrapped: fakeWrap(2), backupCopy: Buffer.alloc(123, 5), gcmEncryptions: 0, retiredAt: null });
    keyring.install(dek);
  });

  it('encrypts secret columns under HSM storage, invisibly to callers, counting encryptions', async () => {
    const estPassword = newSecret('est');
    const cmpSecret = newSecret('cmp');
    const id = await store.devices.create({ name: 'device-1', estPassword, cmpSharedSecret: cmpSecret });
    const raw = (await store.db<DeviceRow>('devices').where({ id }).first())!;
    expect(raw.est_password![0]).toBe(1); // format version 1 (docs/formats.md §4)
    expect(raw.cmp_shared_secret![0]).toBe(1);
    expect(Buffer.from(raw.est_password!).includes(estPassword)).toBe(false);
    expect(await store.devices.get(id)).toMatchObject({ name: 'device-1', estPassword, cmpSharedSecret: cmpSecret, hasEstPassword: true });
    expect(await store.devices.list()).toEqual([expect.objectContaining({ id, name: 'device-1', hasEstPassword: true, hasCmpSharedSecret: true })]);
    expect(JSON.stringify(await store.devices.list())).not.toContain(estPassword);
    expect((await store.keyMaterial.current())!.gcmEncryptions).toBe(2);

    const key = newSecret('private-key-body');
    const pem = `-----BEGIN PRIVATE KEY-----\n${key}\n-----END PRIVATE KEY-----\n`;
    const credentialId = await store.credentials.create({ name: 'issuing', privateKeyPem: pem, certificatePem: null });
    expect((await store.db<CredentialRow>('credentials').where({ id: credentialId }).first())!.private_key[0]).toBe(1);
    expect((await store.credentials.get(credentialId))!.privateKeyPem).toBe(pem);
  });

  it('refuses bad input with a clear error and writes nothing', async () => {
    const before = await store.db('devices').count({ n: '*' });
    await expect(store.devices.create({ name: '  ' })).rejects.toBeInstanceOf(ValidationError);
    await expect(store.devices.create({ name: 'device-1' })).rejects.toThrow(/exists already/);
    await expect(store.devices.create({ name: 'long', estPassword: 'x'.repeat(129) })).rejects.toThrow(/longer than 128/);
    await expect(store.credentials.create({ name: 'c', privateKeyPem: 'not a key' })).rejects.toThrow(/PEM private key/);
    expect(await store.db('devices').count({ n: '*' })).toEqual(before);
  });

  it('renames, re-seals and deletes a device, each change one chained audit entry without a value; concurrent changes keep the chain', async () => {
    const est = newSecret('est-audit');
    const replaced = newSecret('est-replaced');
    const id = await store.devices.create({ name: 'audited', estPassword: est }, 'web:alice');
    await store.devices.rename(id, 'audited-2', 'web:alice');
    await store.devices.rename(id, 'audited-2', 'web:alice'); // the same name: no change, no entry
    await expect(store.devices.rename(id, 'device-1', 'web:alice')).rejects.toThrow(/exists already/);
    await store.devices.replaceSecret(id, 'estPassword', replaced, 'replaced', 'cli');
    await expect(store.devices.replaceSecret(id, 'cmpSharedSecret', 'x'.repeat(129), 'replaced', 'cli')).rejects.toThrow(/longer than 128/);
    expect(await store.devices.get(id)).toMatchObject({ name: 'audited-2', estPassword: replaced, cmpSharedSecret: null });
    const raw = (await store.db<DeviceRow>('devices').where({ id }).first())!;
    expect(raw.est_password![0]).toBe(1);

    // Two writers at once: each change gets its own entry, the chain stays whole.
    const other = await store.devices.create({ name: 'concurrent' }, 'web:bob');
    await Promise.all([
      store.devices.replaceSecret(id, 'cmpSharedSecret', newSecret('cmp-a'), 'regenerated', 'web:alice'),
      store.devices.replaceSecret(other, 'estPassword', newSecret('est-b'), 'regenerated', 'web:bob'),
      store.devices.rename(other, 'concurrent-2', 'web:bob'),
    ]);
    await store.devices.delete(id, 'web:alice');
    expect(await store.devices.get(id)).toBeNull();

    const entries = await store.devices.auditEntries({ deviceId: id });
    expect(entries.map((e) => [e.action, e.actor, e.deviceName])).toEqual([
      ['deleted', 'web:alice', 'audited-2'],
      ['cmpSharedSecret regenerated', 'web:alice', 'audited-2'],
      ['estPassword replaced', 'cli', 'audited-2'],
      ['renamed', 'web:alice', 'audited-2'],
      ['created', 'web:alice', 'audited'],
    ]);
    expect(entries.find((e) => e.action === 'renamed')!.detail).toBe('from “audited” to “audited-2”');
    const all = await store.db('device_audit').select();
    expect(all).toHaveLength(8);
    expect(JSON.stringify(all)).not.toContain(est);
    expect(JSON.stringify(all)).not.toContain(replaced);
    expect(await store.devices.verifyAudit()).toEqual({ ok: true, entries: 8, firstBroken: null });
    // An entry edited in place, or one removed, breaks the chain there.
    await store.db('device_audit').where({ seq: 2 }).update({ actor: 'web:mallory' });
    expect((await store.devices.verifyAudit()).firstBroken).toEqual({ seq: 2, message: 'entry 2 was altered: its content does not match its hash' });
    await store.db('device_audit').where({ seq: 2 }).update({ actor: 'web:alice' });
    await store.db('device_audit').where({ seq: 3 }).delete();
    expect((await store.devices.verifyAudit()).firstBroken?.message).toBe('entry 3 is missing (deleted?)');
  });

  it('keeps a CA, and deactivates only token CAs after a token loss, once', async () => {
    const credentialId = (await store.credentials.list())[0]!.id;
    await store.cas.create({ name: 'db-ca', keyLocation: 'db', credentialId });
    await store.cas.create({ name: 'token-ca', keyLocation: 'token', tokenKeyLabel: 'ca-key' });
    await expect(store.cas.create({ name: 'bad', keyLocation: 'token' })).rejects.toBeInstanceOf(ValidationError);
    expect(await store.cas.deactivateTokenCas('token lost')).toBe(1);
    expect(await store.cas.deactivateTokenCas('token lost')).toBe(0);
    const cas = await store.cas.list();
    expect(cas.find((c) => c.name === 'db-ca')).toMatchObject({ active: true, deactivationReason: null });
    expect(cas.find((c) => c.name === 'token-ca')).toMatchObject({ active: false, deactivationReason: 'token lost' });
  });

  it('keeps TLS credentials with the private key sealed, one active', async () => {
    const body = newSecret('tls-key');
    const input = {
      privateKeyPem: `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`,
      certificatePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
      chainPem: null,
      fingerprintSha256: 'AA:BB',
      subjectAltNames: ['DNS:localhost'],
      notAfter: '2030-01-01T00:00:00.000Z',
      source: 'generated' as const,
    };
    const first = await store.tls.save(input, { activate: true });
    const second = await store.tls.save({ ...input, fingerprintSha256: 'CC:DD' }, { activate: true });
    expect((await store.tls.active())!.id).toBe(second);
    await store.tls.activate(first);
    expect(await store.tls.active()).toMatchObject({ id: first, privateKeyPem: input.privateKeyPem, subjectAltNames: ['DNS:localhost'], active: true });
    expect((await store.db<TlsCredentialRow>('tls_server_credentials').where({ id: first }).first())!.private_key[0]).toBe(1);
  });

  it('stores secrets in plaintext under software storage, as the UI says', async () => {
    await store.storage.setStorageType('software');
    const id = await store.devices.create({ name: 'software-device', estPassword: 'visible-by-design' });
    expect(Buffer.from((await store.db<DeviceRow>('devices').where({ id }).first())!.est_password!).toString('utf8')).toBe('visible-by-design');
    await store.storage.setStorageType('softhsm');
  });

  it('checks every stored secret value with the keyring: a plaintext value left under HSM storage is named, never shown', async () => {
    const columns: Array<[string, string]> = [
      ['devices', 'est_password'],
      ['devices', 'cmp_shared_secret'],
      ['credentials', 'private_key'],
      ['tls_server_credentials', 'private_key'],
      ['custody_canary', 'value'],
      ['log_chain_keys', 'sealed_key'],
      ['web_secrets', 'value'],
    ];
    let stored = 0;
    for (const [table, column] of columns) stored += Number((await store.db(table).whereNotNull(column).count({ n: '*' }).first())?.n ?? 0);
    const plaintext = (await store.db<DeviceRow>('devices').where({ name: 'software-device' }).first())!.id;
    const check = await store.secrets.checkAll(2);
    expect(check).toEqual({ checked: stored, readable: stored - 1, unreadable: [`devices.est_password #${plaintext}`] });
    expect(JSON.stringify(check)).not.toContain('visible-by-design');
  });

  it('keeps the summary a session may see beside the session, and the end of the set-up spares it', async () => {
    const sessions = new WebSessionRepository(store.db);
    const at = '2026-12-07T12:00:00.000Z';
    const session = { setupAuthorized: false, adminUserId: null, createdAt: at, expiresAt: '2099-01-01T00:00:00.000Z' };
    await sessions.create({ ...session, idHash: 'a1'.repeat(32), summaryOf: at });
    await sessions.create({ ...session, idHash: 'b2'.repeat(32), setupAuthorized: true });
    await sessions.revokeSetupAuthorizations();
    expect(await sessions.find('a1'.repeat(32))).toMatchObject({ summaryOf: at, setupAuthorized: false });
    expect(await sessions.find('b2'.repeat(32))).toBeNull();
  });

  it('fails clearly when the hierarchy is locked', async () => {
    const id = (await store.devices.findByName('device-1'))!.id;
    keyring.clear();
    await expect(store.devices.get(id)).rejects.toMatchObject({ code: 'DEK_UNAVAILABLE' });
    await expect(store.devices.create({ name: 'while-locked', estPassword: 'x-locked-secret' })).rejects.toMatchObject({ code: 'DEK_UNAVAILABLE' });
    expect(await store.devices.findByName('while-locked')).toBeNull();
    if (database.file) expect(readFileSync(database.file).length).toBeGreaterThan(0);
  });
});
