import { createCipheriv, randomBytes } from 'node:crypto';
import { migrateToLatest } from '../../db/database';
import { Store } from '../../db/store';
import { DekKeyring } from '../../crypto/dek-keyring';
import { MINIMUM_KDF } from '../../crypto/backup-copy';
import { KeyCustody } from '../../effects/key-custody';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { Pkcs11Token } from '../../hsm/pkcs11-token';
import { engines, freshDatabase, TestDatabase } from '../support/databases';
import { decryptPerDocs } from '../support/field-format';
import { newSecret } from '../support/secrets';
import { SoftHsm, SOFTHSM_MODULE } from '../support/softhsm';

/**
 * The DEK rotation's data side on a real token and database (docs/lifecycle.md "Key rotation"):
 * two processes' worth of keyrings over one store — the one that rotates, and one that has not seen
 * the rotation — the fence on the GCM counter, the job's cursor across an interruption, its
 * compare-and-swap against a concurrent writer, Trustpoint's key-less values, and associated data
 * that still binds each value to its column.
 */
describe.each(engines())('DEK rotation on %s', (engine) => {
  let database: TestDatabase;
  let hsm: SoftHsm;
  const processes: Array<{ store: Store; keyring: DekKeyring; custody: KeyCustody }> = [];
  const values = new Map<string, { est: string; cmp: string }>();

  /** One keyward process's view: its own store connections and keyring, the same database and token. */
  function open(): { store: Store; keyring: DekKeyring; custody: KeyCustody } {
    const keyring = new DekKeyring();
    const store = Store.open(database.config, keyring);
    const custody = new KeyCustody(store, keyring, { secretsDir: hsm.dir, kekLabel: 'trustpoint-kek', kdf: MINIMUM_KDF });
    const view = { store, keyring, custody };
    processes.push(view);
    return view;
  }

  beforeAll(async () => {
    database = await freshDatabase(engine, 'dek-rotation');
    hsm = new SoftHsm(`dek-rotation-${engine}`);
    const token = hsm.initToken('RotationToken');
    Pkcs11Module.open(SOFTHSM_MODULE).refresh();
    new Pkcs11Token(token.config).generateKek();
    const { store, custody } = open();
    await migrateToLatest(store.db);
    await store.storage.setStorageType('softhsm');
    await store.storage.setToken({ hsmType: 'softhsm', modulePath: SOFTHSM_MODULE, tokenLabel: token.label, kekLabel: 'trustpoint-kek', slot: null, pinSource: `file:${token.pinFile}` });
    await custody.hierarchy.createDek(await custody.wrapper());
    await custody.hierarchy.setBackupPassword(`Bk-${newSecret('backup')}`);
    for (let i = 0; i < 1200; i++) {
      const v = { est: newSecret('est'), cmp: newSecret('cmp') };
      values.set(`device-${i}`, v);
      await store.devices.create({ name: `device-${i}`, estPassword: v.est, cmpSharedSecret: v.cmp });
    }
  });

  afterAll(async () => {
    for (const { store, keyring } of processes) {
      keyring.clear();
      await store.close();
    }
    await database.drop();
  });

  it('rotates while a process that missed the promotion writes and reads; a moved value still fails', async () => {
    const rotator = processes[0]!;
    const stale = open();
    await stale.custody.ensureDek();
    const oldKeyId = stale.keyring.current!;

    // A value in Trustpoint's format (no key id), as an imported database holds, under the old DEK.
    const legacyPlain = newSecret('legacy');
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', rotator.keyring.key(oldKeyId), nonce);
    const body = Buffer.concat([cipher.update(Buffer.concat([Buffer.from(legacyPlain), Buffer.from([0])])), cipher.final()]);
    const legacy = Buffer.concat([nonce, cipher.getAuthTag(), body]).toString('base64');
    await rotator.store.db('devices').where({ name: 'device-0' }).update({ est_password: legacy });
    values.get('device-0')!.est = legacyPlain;

    const { keyId: newKeyId } = await rotator.custody.hierarchy.addDek(await rotator.custody.wrapper());
    // Wrapped under the same KEK, the new DEK carries that KEK's age, not its own.
    const [primary, pending] = await rotator.store.keyMaterial.keyset();
    expect(pending).toMatchObject({ dekKeyId: newKeyId, state: 'pending', kekCreatedAt: primary!.kekCreatedAt });
    await rotator.custody.hierarchy.promote(newKeyId);
    expect(stale.keyring.current).toBe(oldKeyId);

    // The stale process writes: fenced, it reloads the keyset and seals under the new primary.
    const latePlain = newSecret('late');
    await stale.store.devices.create({ name: 'late-device', estPassword: latePlain, cmpSharedSecret: null });
    expect(stale.keyring.current).toBe(newKeyId);
    const lateRow = (await rotator.store.db<{ name: string; est_password: Buffer }>('devices').where({ name: 'late-device' }).first('est_password'))!;
    expect(lateRow.est_password.toString('hex', 1, 9)).toBe(newKeyId);

    // Interrupted after its first batch (the checkpoint throws, as a crash would stop it)…
    let batches = 0;
    await expect(
      rotator.store.reencryption.run(newKeyId, {
        batchSize: 100,
        checkpoint: async (name) => {
          if (name === 'batch-committed' && ++batches === 1) throw new Error('interrupted');
        },
      }),
    ).rejects.toThrow('interrupted');
    const partial = await rotator.store.reencryption.status();
    expect(partial).toMatchObject({ targetKeyId: newKeyId, finishedAt: null });
    expect(partial!.valuesDone).toBeGreaterThan(0);
    expect(partial!.valuesDone).toBeLessThan(partial!.valuesTotal);

    // …a third process opens a value under the new key id it has not loaded yet.
    const reader = open();
    await reader.custody.ensureDek();
    expect((await reader.store.devices.findByName('device-0'))!.estPassword).toBe(legacyPlain);

    // Resumed: a value a writer replaces while the job runs keeps the writer's value.
    const racedPlain = newSecret('raced');
    let resumedBatches = 0;
    const progress: number[] = [];
    await rotator.store.reencryption.run(newKeyId, {
      batchSize: 100,
      onProgress: (status) => progress.push(status.valuesDone),
      checkpoint: async (name) => {
        if (name === 'before-batch' && ++resumedBatches === 3) {
          // A writer (the stale process, now on the new primary) replaces a value the job has not reached yet.
          await stale.store.db.transaction(async (trx) => {
            await trx('devices')
              .where({ name: 'device-1150' })
              .update(await stale.store.secrets.seal(trx, 'devices', { est_password: racedPlain }));
          });
        }
      },
    });
    expect(progress[0]).toBeGreaterThan(0); // resumed from the cursor, not from nothing
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    const done = await rotator.store.reencryption.status();
    expect(done!.finishedAt).not.toBeNull();

    const counts = await rotator.store.reencryption.countValuesByKeyId();
    expect([...counts.keys()]).toEqual([newKeyId]);
    values.get('device-1150')!.est = racedPlain;

    // Both keys' readers, every value: through keyward and through the reader written from the docs.
    for (const [name, v] of values) {
      const device = (await stale.store.devices.findByName(name))!;
      expect([device.estPassword, device.cmpSharedSecret]).toEqual([v.est, v.cmp]);
    }
    const raw = (await rotator.store.db<{ name: string; est_password: Buffer; cmp_shared_secret: Buffer }>('devices').where({ name: 'device-5' }).first('est_password', 'cmp_shared_secret'))!;
    expect(decryptPerDocs(raw.est_password, rotator.keyring.key(newKeyId), 'devices', 'est_password').value).toBe(values.get('device-5')!.est);

    // Associated data is kept: the EST password copied into the CMP column does not open there.
    await rotator.store.db('devices').where({ name: 'device-5' }).update({ cmp_shared_secret: raw.est_password });
    await expect(rotator.store.devices.findByName('device-5')).rejects.toMatchObject({ code: 'FIELD_CORRUPT' });
    await rotator.store.db('devices').where({ name: 'device-5' }).update({ cmp_shared_secret: raw.cmp_shared_secret });

    // Retired only now, everywhere: the stale process's keyring forgets the old DEK at its next reload.
    await rotator.custody.hierarchy.retire([oldKeyId]);
    const retired = (await rotator.store.keyMaterial.all()).find((r) => r.dekKeyId === oldKeyId)!;
    expect(retired).toMatchObject({ state: 'retired', wrapped: null, backupCopy: null });
    await stale.custody.reloadKeyset();
    expect(stale.keyring.has(oldKeyId)).toBe(false);
    expect((await stale.store.devices.findByName('device-7'))!.estPassword).toBe(values.get('device-7')!.est);
  });
});
