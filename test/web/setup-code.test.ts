import { migrateToLatest } from '../../db/database';
import { RateLimitRepository, SetupCodeRepository, Store } from '../../db/store';
import { DekKeyring, generateDek } from '../../crypto/dek-keyring';
import type { WrappedKey } from '../../hsm/key-wrapper';
import { markCurrent } from '../../server/web/graph-svg';
import { DatabaseRateLimitStore } from '../../server/web/rate-limits';
import { generateSetupCode, SetupCodeError, SharedSetupCode } from '../../server/web/setup-code';
import { engines, freshDatabase, TestDatabase } from '../support/databases';

jest.setTimeout(60_000);

const unusedWrap: WrappedKey = { mechanism: 'CKM_AES_KEY_WRAP', kek: { label: 'trustpoint-kek', id: 'ab'.repeat(16) }, blob: Buffer.alloc(40, 1) };

describe('web: the set-up code', () => {
  it('is 120 random bits in six groups', () => {
    const code = generateSetupCode();
    expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){5}$/);
    expect(generateSetupCode()).not.toBe(code);
  });
});

/** Two stores on one database stand for two nodes; the web's shared state is read through each. */
describe.each(engines())('web state shared through %s', (engine) => {
  let database: TestDatabase;
  let stores: Store[];
  let revoked: string[];

  const node = (index: number) => {
    const name = `host-${index}:/var/lib/keyward`;
    return new SharedSetupCode(new SetupCodeRepository(stores[index]!.db), name, async () => {
      revoked.push(name);
      return 1;
    });
  };

  beforeEach(async () => {
    database = await freshDatabase(engine, 'web-state');
    stores = [Store.open(database.config, new DekKeyring()), Store.open(database.config, new DekKeyring())];
    await migrateToLatest(stores[0]!.db);
    revoked = [];
  });

  afterEach(async () => {
    for (const store of stores) await store.close();
    await database.drop();
  });

  it('one code for three nodes starting at once: one prints it, the others say where; any node accepts it once', async () => {
    const nodes = [node(0), node(1), node(0)];
    // Three announcements at once (the third through the first store, as another node on it would).
    const notices = await Promise.all([nodes[0]!.announce(), node(1).announce(), new SharedSetupCode(new SetupCodeRepository(stores[0]!.db), 'host-2:/k', async () => 0).announce()]);
    const codes = notices.filter((notice): notice is { code: string } => 'code' in notice);
    expect(codes).toHaveLength(1);
    const creator = (await new SetupCodeRepository(stores[0]!.db).find())!.createdBy;
    for (const notice of notices) if (!('code' in notice)) expect(notice).toEqual({ printedBy: creator, printedAt: expect.any(String) });

    const code = codes[0]!.code;
    await expect(nodes[1]!.redeem('AAAA-AAAA-AAAA-AAAA-AAAA-AAAA')).rejects.toThrow(SetupCodeError);
    await expect(nodes[1]!.redeem(undefined)).rejects.toThrow(/not the set-up code/);
    expect(await nodes[0]!.used()).toBe(false);
    await nodes[1]!.redeem(` ${code.toLowerCase().replace(/-/g, ' ')} `);
    expect(await nodes[0]!.used()).toBe(true);
    await expect(nodes[0]!.redeem(code)).rejects.toThrow(/used already/);
  });

  it('the same node starting again makes a new code and ends what the old one granted; another node does so only once it is used', async () => {
    const first = await node(0).announce();
    expect('code' in first && first.revoked).toBe(1);
    revoked = [];
    expect('code' in (await node(1).announce())).toBe(false);
    const again = await node(0).announce();
    expect('code' in again).toBe(true);
    expect(revoked).toEqual(['host-0:/var/lib/keyward']);
    await expect(node(1).redeem((first as { code: string }).code)).rejects.toThrow(/not the set-up code/);

    await node(1).redeem((again as { code: string }).code);
    revoked = [];
    // Used: the next node to announce makes a new one, and the session it granted (a wizard in progress) stays.
    const replaced = await node(1).announce();
    expect('code' in replaced).toBe(true);
    expect(revoked).toEqual([]);
    // Node 1 starts again, before it serves: its code is withdrawn and what it granted ends; node 0's start changes nothing of it.
    revoked = [];
    expect(await node(0).restarted()).toBe(0);
    expect(await new SetupCodeRepository(stores[0]!.db).find()).not.toBeNull();
    expect(await node(1).restarted()).toBe(1);
    expect(revoked).toEqual(['host-1:/var/lib/keyward']);
    expect(await new SetupCodeRepository(stores[0]!.db).find()).toBeNull();
    await node(1).announce();
    await node(0).retire();
    expect(await new SetupCodeRepository(stores[1]!.db).find()).toBeNull();
  });

  it('a dump holds a salted scrypt hash only: neither the code nor its normalized form', async () => {
    const notice = await node(0).announce();
    const code = (notice as { code: string }).code;
    const rows = await stores[1]!.db('web_setup_code').select();
    const dump =
      JSON.stringify(rows) +
      rows
        .map((row: Record<string, unknown>) =>
          Object.values(row)
            .map((v) => (Buffer.isBuffer(v) ? v.toString('latin1') : String(v)))
            .join(''),
        )
        .join('');
    expect(dump).not.toContain(code);
    expect(dump).not.toContain(code.replace(/-/g, ''));
    expect((rows[0] as { kdf: string }).kdf).toMatch(/^scrypt:N=\d+,r=8,p=1$/);
  });

  it('failed attempts through two nodes count against one limit, and a window that ended starts again', async () => {
    let now = 1_000_000;
    const limits = stores.map((store) => {
      const limit = new DatabaseRateLimitStore(new RateLimitRepository(store.db), 'login:', () => now);
      limit.init({ windowMs: 60_000 } as never);
      return limit;
    });
    const counts = [];
    for (let i = 0; i < 6; i++) counts.push((await limits[i % 2]!.increment('10.0.0.1')).totalHits);
    expect(counts).toEqual([1, 2, 3, 4, 5, 6]);
    await limits[0]!.decrement('10.0.0.1');
    expect((await limits[1]!.get('10.0.0.1'))?.totalHits).toBe(5);
    expect((await limits[1]!.increment('10.0.0.2')).totalHits).toBe(1);
    now += 60_000;
    expect(await limits[0]!.get('10.0.0.1')).toBeUndefined();
    expect((await limits[1]!.increment('10.0.0.1')).totalHits).toBe(1);
    // The expired counter of 10.0.0.2 was purged by that increment.
    expect(await stores[0]!.db('web_rate_limits').pluck('key')).toEqual(['login:10.0.0.1']);
    // Concurrent increments on both nodes all count.
    await Promise.all(Array.from({ length: 20 }, (_, i) => limits[i % 2]!.increment('10.0.0.3')));
    expect((await limits[0]!.get('10.0.0.3'))?.totalHits).toBe(20);
  });

  it('the CSRF key: plaintext before the DEK, replaced by a sealed one when it comes, opened by every node with the DEK', async () => {
    const [one, two] = stores as [Store, Store];
    expect(await one.webSecrets.create('csrf-hmac-key', 'a'.repeat(64))).toBe(true);
    expect(await two.webSecrets.create('csrf-hmac-key', 'b'.repeat(64))).toBe(false);
    expect(await two.webSecrets.read('csrf-hmac-key')).toMatchObject({ state: 'open', value: 'a'.repeat(64), sealed: false });

    // HSM storage, then the DEK: the plaintext key is replaced, not sealed.
    await one.storage.setStorageType('softhsm');
    const dek = generateDek();
    await one.keyMaterial.create(dek.keyId, unusedWrap);
    (one.secrets as unknown as { keyring: DekKeyring }).keyring.install(dek);
    expect(await one.webSecrets.replacePlaintext()).toBe(1);
    const sealed = await one.webSecrets.read('csrf-hmac-key');
    expect(sealed).toMatchObject({ state: 'open', sealed: true });
    const key = (sealed as { value: string }).value;
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(key).not.toBe('a'.repeat(64));
    const raw = (await two.db('web_secrets').first<{ value: Buffer }>('value')).value;
    expect(raw.includes(Buffer.from(key))).toBe(false);
    expect(raw[0]).toBe(1);

    // A node without the DEK cannot open it; with it, it reads the same key.
    expect(await two.webSecrets.read('csrf-hmac-key')).toMatchObject({ state: 'unreadable' });
    (two.secrets as unknown as { keyring: DekKeyring }).keyring.install(dek);
    expect(await two.webSecrets.read('csrf-hmac-key')).toMatchObject({ state: 'open', value: key, sealed: true });
  });
});

describe('web: the state graph marking', () => {
  it('classes the current nodes and clusters, sizes the SVG by the page, drops the prolog', () => {
    const raw =
      '<?xml version="1.0"?>\n<!DOCTYPE svg>\n<!-- c -->\n<svg width="10pt" height="5pt" viewBox="0 0 10 5" xmlns="http://www.w3.org/2000/svg">\n<g id="clust1" class="cluster">\n<title>cluster_lifecycle.wizard</title>\n</g>\n<g id="node1" class="node">\n<title>lifecycle.wizard.demoData.waiting</title>\n</g>\n<g id="node2" class="node">\n<title>lifecycle.operational</title>\n</g>\n</svg>\n';
    const svg = markCurrent(raw, new Set(['lifecycle.wizard', 'lifecycle.wizard.demoData.waiting']));
    expect(svg.startsWith('<svg class="state-graph"')).toBe(true);
    expect(svg).not.toMatch(/width="10pt"|<!--|<\?xml/);
    expect(svg).toContain('<g id="node1" class="node current" data-state="lifecycle.wizard.demoData.waiting">');
    expect(svg).toContain('<g id="clust1" class="cluster current" data-state="lifecycle.wizard">');
    expect(svg).toContain('<g id="node2" class="node">');
  });
});
