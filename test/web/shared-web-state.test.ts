import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DekKeyring } from '../../crypto/dek-keyring';
import { Store } from '../../db/store';
import { KeyCustody } from '../../effects/key-custody';
import { hostname } from 'node:os';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { MINIMUM_KDF } from '../../crypto/backup-copy';
import { freshDatabase, TestDatabase } from '../support/databases';
import { newSecret, registerSecret } from '../support/secrets';
import { setNativeEnv, SOFTHSM_MODULE } from '../support/softhsm';
import { softHsmForm, unlock } from './support/http-wizard';
import { KeywardServer } from './support/keyward-server';
import { csrfToken, WebClient } from './support/web-client';

jest.setTimeout(240_000);

const PRINTED = /set-up code: ([0-9A-Z-]{29})|was printed on the console of/;

/**
 * Two `keyward start` processes on one PostgreSQL database and one token directory (the "network
 * HSM"), with the token PIN put into each home as an orchestrator secret would be: nothing of the
 * web's state is copied between them (issue 12, deliver 4).
 */
const describePg = process.env.KEYWARD_TEST_SKIP_PG === '1' ? describe.skip : describe;

describePg('web: two nodes on one PostgreSQL share the set-up code, the CSRF key and the login limits', () => {
  const secrets = { pin: newSecret('pin'), soPin: newSecret('sopin'), backupPassword: `Bk-${newSecret('backup')}`, adminPassword: `Ad-${newSecret('admin')}` };
  let database: TestDatabase;
  let nodes: KeywardServer[] = [];

  /** The database as a dump would show it: every row of the web's shared tables, bytes as latin1. */
  async function dump(): Promise<{ text: string; csrfValue: Buffer | null }> {
    const store = Store.open(database.config, new DekKeyring());
    try {
      let text = '';
      for (const table of ['web_secrets', 'web_setup_code', 'web_rate_limits']) {
        for (const row of (await store.db(table).select()) as Array<Record<string, unknown>>) {
          text += Object.values(row)
            .map((v) => (Buffer.isBuffer(v) ? `${v.toString('latin1')}|${v.toString('hex')}` : String(v)))
            .join('|');
        }
      }
      const csrf = await store.db('web_secrets').where({ name: 'csrf-hmac-key' }).first<{ value: Buffer } | undefined>('value');
      return { text, csrfValue: csrf ? Buffer.from(csrf.value) : null };
    } finally {
      await store.close();
    }
  }

  /** The CSRF key as a node with the token and its PIN reads it (the DEK unwrapped by the KEK). */
  async function csrfKeyWithDek(): Promise<string> {
    setNativeEnv('SOFTHSM2_CONF', join(nodes[0]!.home, 'softhsm2.conf'));
    Pkcs11Module.open(SOFTHSM_MODULE).refresh();
    const keyring = new DekKeyring();
    const store = Store.open(database.config, keyring);
    try {
      await new KeyCustody(store, keyring, { secretsDir: join(nodes[0]!.home, 'secrets'), kekLabel: 'trustpoint-kek', kdf: MINIMUM_KDF }).ensureDek();
      const reading = await store.webSecrets.read('csrf-hmac-key');
      if (reading.state !== 'open' || !reading.sealed) throw new Error(`the CSRF key is not sealed and open: ${reading.state}`);
      return reading.value;
    } finally {
      keyring.clear();
      await store.close();
    }
  }

  beforeAll(async () => {
    database = await freshDatabase('postgres', 'shared-web');
    const url = (database.config as { connectionString: string }).connectionString;
    const first = new KeywardServer('shared-web-1', { DATABASE_URL: url });
    // One token directory for both: the first home's SoftHSM configuration stands for the network HSM.
    const second = new KeywardServer('shared-web-2', { DATABASE_URL: url, SOFTHSM2_CONF: join(first.home, 'softhsm2.conf') });
    nodes = [first, second];
    for (const node of nodes) {
      // The orchestrator mounts the token PIN into every replica before it starts.
      mkdirSync(join(node.home, 'secrets'), { recursive: true, mode: 0o700 });
      writeFileSync(join(node.home, 'secrets', 'hsm-user-pin'), `${secrets.pin}\n`, { mode: 0o600 });
      chmodSync(join(node.home, 'secrets'), 0o700);
    }
    // An earlier keyward's CSRF key file on the second node: moved into the database, the file removed.
    writeFileSync(join(second.home, 'secrets', 'web-csrf-key'), `${'c'.repeat(64)}\n`, { mode: 0o600 });
    // One after the other: two first BOOTs on an empty database at once are the boot lease's part of issue 12.
    for (const node of nodes) await node.start();
  });

  afterAll(async () => {
    for (const node of nodes) await node.stop();
    await database?.drop();
  });

  it('runs the wizard across both nodes: the code one printed unlocks the other, forms cross, limits add up, a dump opens nothing', async () => {
    // Exactly one printed the code, the other says where it is.
    const notices = await Promise.all(nodes.map((node) => node.waitFor(PRINTED)));
    const printer = notices.findIndex((match) => match[1] !== undefined);
    expect(notices.filter((match) => match[1] !== undefined)).toHaveLength(1);
    const [a, b] = [nodes[printer]!, nodes[1 - printer]!];
    const code = await a.setupCode();
    expect(b.output).toContain(`the node ${hostname()}:${a.home} at`);
    expect(b.output).not.toContain(code);

    // The code printed by one node unlocks the wizard on the other.
    const browser = new WebClient(b.url);
    expect(await unlock(browser, code)).toBe('/setup-wizard/crypto-storage-setup/');
    // The session is in the database: node a knows it too.
    browser.baseUrl = a.url;
    expect((await browser.get('/setup-wizard/crypto-storage-setup/')).status).toBe(200);
    expect(existsSync(join(nodes[1]!.home, 'secrets', 'web-csrf-key'))).toBe(false);

    // Set-up code guesses through both nodes add up to one limit (10 per address).
    const guesser = new WebClient(a.url);
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      guesser.baseUrl = nodes[i % 2]!.url;
      const token = csrfToken((await guesser.get('/setup-wizard/unlock/')).body)!;
      statuses.push((await guesser.post('/setup-wizard/unlock/', { _csrf: token, code: 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA' })).status);
    }
    expect(statuses).toEqual([...(Array(10).fill(400) as number[]), 429]);

    // Before the DEK: a form fetched from one node posts to the other (the key is plaintext, and documented so).
    const before = await dump();
    expect(before.csrfValue![0]).toBeGreaterThanOrEqual(0x20);
    const plaintextKey = before.csrfValue!.toString('utf8');
    const crossPost = async (from: KeywardServer, to: KeywardServer, page: string, fields: Record<string, string>) => {
      browser.baseUrl = from.url;
      const token = csrfToken((await browser.get(page)).body);
      expect(token).not.toBeNull();
      browser.baseUrl = to.url;
      const response = await browser.post(page, { _csrf: token!, ...fields });
      if (response.status !== 303) throw new Error(`${page} from ${from.url} to ${to.url}: HTTP ${response.status}`);
      return new URL(response.location!).pathname;
    };
    let at = await crossPost(a, b, '/setup-wizard/crypto-storage-setup/', { storageType: 'softhsm' });
    at = await crossPost(b, a, at, softHsmForm(secrets.pin, secrets.soPin));

    // The DEK exists: the plaintext key was replaced by a new one, sealed (docs/formats.md §4).
    const after = await dump();
    expect(after.csrfValue![0]).toBe(1);
    const sealedKey = await csrfKeyWithDek();
    registerSecret(sealedKey);
    expect(sealedKey).not.toBe(plaintextKey);
    expect(after.text).not.toContain(sealedKey);

    // After the DEK, a form still crosses both ways (the node that did not create the DEK loads it).
    await crossPost(a, b, at, { mode: 'fresh' });
    at = await crossPost(b, a, '/setup-wizard/generate-tls-server-credential/', { subjectAltNames: 'localhost\n127.0.0.1' });
    at = await crossPost(a, b, at, {});
    at = await crossPost(b, a, at, { password: secrets.backupPassword, passwordConfirm: secrets.backupPassword });
    // The optional recovery shares, then the demo data: both skipped.
    at = await crossPost(a, b, at, { choice: 'skip' });
    at = await crossPost(b, a, at, { choice: 'skip' });
    at = await crossPost(a, b, at, { username: 'admin', password: secrets.adminPassword, passwordConfirm: secrets.adminPassword });
    expect(at).toBe('/summary');

    // Failed logins through both nodes add up to one limit (unknown names: no account's own lock).
    const attacker = new WebClient(a.url);
    const logins: number[] = [];
    for (let i = 0; i < 11; i++) {
      attacker.baseUrl = nodes[i % 2]!.url;
      const token = csrfToken((await attacker.get('/login')).body)!;
      logins.push((await attacker.post('/login', { _csrf: token, username: `nobody-${i}`, password: 'wrong-password' })).status);
    }
    expect(logins.slice(0, 10).every((status) => status !== 429)).toBe(true);
    expect(logins[10]).toBe(429);

    // The wizard is complete: the set-up code's hash is gone; nothing in the dump opens anything.
    const last = await dump();
    expect(last.text).not.toContain(code);
    expect(last.text).not.toContain(code.replace(/-/g, ''));
    expect(last.text).not.toContain(sealedKey);
    expect(last.text).not.toContain('c'.repeat(64));
    const remaining = Store.open(database.config, new DekKeyring());
    try {
      await until(async () => (await remaining.db('web_setup_code').count({ n: '*' }))[0]!.n == 0);
    } finally {
      await remaining.close();
    }
  });
});

async function until(probe: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
