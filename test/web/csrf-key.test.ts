import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { DekKeyring, generateDek } from '../../crypto/dek-keyring';
import { migrateToLatest } from '../../db/database';
import { Store } from '../../db/store';
import type { WrappedKey } from '../../hsm/key-wrapper';
import { CSRF_KEY_NAME, SharedCsrfKey } from '../../server/web/csrf';
import type { Phase } from '../../server/web/lifecycle-phase';
import { createLogger } from '../../server/web/logger';
import { engines, freshDatabase, TestDatabase } from '../support/databases';
import { testDir } from '../support/run-dir';

jest.setTimeout(60_000);

const unusedWrap: WrappedKey = { mechanism: 'CKM_AES_KEY_WRAP', kek: { label: 'trustpoint-kek', id: 'ab'.repeat(16) }, blob: Buffer.alloc(40, 1) };

/** One node: a store with its own keyring, the phase it last read, and what it logged. */
interface Node {
  store: Store;
  keyring: DekKeyring;
  phase: Phase | null;
  log: string;
  key: SharedCsrfKey;
}

/**
 * The CSRF key's rules (server/web/csrf.ts) with two stores on one database standing for two nodes:
 * which node replaces the key when, and what a node without the DEK signs with.
 */
describe.each(engines())('the shared CSRF key on %s', (engine) => {
  let database: TestDatabase;
  let nodes: Node[];
  const dek = generateDek();

  function node(legacyFile: string): Node {
    const keyring = new DekKeyring();
    const store = Store.open(database.config, keyring);
    const self = { store, keyring, phase: null, log: '' } as Node;
    const sink = new Writable({ write: (chunk: Buffer, _encoding, done) => ((self.log += chunk.toString()), done()) });
    self.key = new SharedCsrfKey(store.webSecrets, {
      legacyFile,
      phase: () => self.phase,
      // As KeyCustody.ensureDek does when the token answers: this node's keyring gets the DEK.
      loadDek: async () => {
        if (self.phase === 'operational' && !keyring.has(dek.keyId)) keyring.install(dek);
      },
      logger: createLogger('info', sink),
    });
    return self;
  }

  beforeEach(async () => {
    database = await freshDatabase(engine, 'csrf-key');
    const dir = testDir('csrf-key');
    nodes = [node(join(dir, 'one', 'web-csrf-key')), node(join(dir, 'two', 'web-csrf-key'))];
    await migrateToLatest(nodes[0]!.store.db);
  });

  afterEach(async () => {
    for (const { store } of nodes) await store.close();
    await database.drop();
  });

  const stored = async () => Buffer.from((await nodes[0]!.store.db('web_secrets').where({ name: CSRF_KEY_NAME }).first<{ value: Buffer }>('value')).value);

  it("moves an earlier keyward's file key into the database, removes the file, and still checks forms signed with it", async () => {
    const [one, two] = nodes as [Node, Node];
    const file = (one.key as unknown as { options: { legacyFile: string } }).options.legacyFile;
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, `${'e'.repeat(64)}\n`, { mode: 0o600 });
    await one.key.load({ loadDek: true });
    expect(one.key.current).toEqual(['e'.repeat(64)]);
    expect(existsSync(file)).toBe(false);
    expect((await stored()).toString()).toBe('e'.repeat(64));
    expect(one.log).toContain('moved into the database');

    // The second node had a file of its own: the database's key signs, its own still checks.
    const other = (two.key as unknown as { options: { legacyFile: string } }).options.legacyFile;
    mkdirSync(join(other, '..'), { recursive: true });
    writeFileSync(other, `${'f'.repeat(64)}\n`, { mode: 0o600 });
    await two.key.load({ loadDek: true });
    expect(two.key.current).toEqual(['e'.repeat(64), 'f'.repeat(64)]);
    expect(existsSync(other)).toBe(false);
  });

  it('operational under HSM storage: the plaintext key is replaced by a sealed one; a node that cannot load the DEK signs with its own until it can', async () => {
    const [one, two] = nodes as [Node, Node];
    await one.key.load({ loadDek: true });
    const plaintext = one.key.current[0]!;
    await one.store.storage.setStorageType('softhsm');
    await one.store.keyMaterial.create(dek.keyId, unusedWrap);
    one.keyring.install(dek);
    one.phase = 'operational';
    expect(await one.key.load({ loadDek: true })).toBe(true);
    const sealed = one.key.current[0]!;
    expect(sealed).not.toBe(plaintext);
    expect((await stored())[0]).toBe(1);

    // Node two's token is unreachable (its loadDek brings nothing in the wizard phase here).
    two.phase = 'wizard';
    await two.key.load({ loadDek: true });
    expect(two.key.current[0]).not.toBe(sealed);
    expect(two.log).toContain('its forms post only to itself');
    expect((await stored())[0]).toBe(1);
    // Its token answers again: the next reading (a failed check, a lifecycle change) takes the shared key.
    two.phase = 'operational';
    expect(await two.key.refresh()).toBe(true);
    expect(two.key.current).toEqual([sealed]);
  });

  it('auto-restore: nobody can open the sealed key, so it is replaced by a plaintext one; a node with the DEK takes that one and seals a new one only once operational', async () => {
    const [one, two] = nodes as [Node, Node];
    await one.store.storage.setStorageType('softhsm');
    await one.store.keyMaterial.create(dek.keyId, unusedWrap);
    one.keyring.install(dek);
    await one.key.load({ loadDek: true });
    const sealed = one.key.current[0]!;
    expect((await stored())[0]).toBe(1);

    two.phase = 'autoRestore';
    await two.key.load({ loadDek: true });
    const interim = two.key.current[0]!;
    expect(interim).not.toBe(sealed);
    expect((await stored()).toString()).toBe(interim);

    one.phase = 'autoRestore';
    await one.key.load({ loadDek: true });
    // The interim key signs; the sealed key it replaced still checks this node's forms served before.
    expect(one.key.current).toEqual([interim, sealed]);
    expect((await stored()).toString()).toBe(interim);

    one.phase = 'operational';
    await one.key.load({ loadDek: true });
    // A new sealed key drops the plaintext interim one: a dump of auto-restore's key checks nothing.
    expect(one.key.current).toHaveLength(1);
    expect(one.key.current[0]).not.toBe(interim);
    expect((await stored())[0]).toBe(1);
  });
});
