import { type ChildProcess, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import knex, { type Knex } from 'knex';
import { recoverDeksPerDocs } from '../support/backup-key-format';
import { CliHome, type CliRun } from '../support/cli';
import { ALL_SECRET_COLUMNS_PER_DOCS, decryptWithKeysetPerDocs, encryptPerDocs } from '../support/field-format';
import type { BackupKeyRow, CredentialRow, DeviceRow, KeyMaterialRow } from '../../db/rows';
import { registerSecret } from '../support/secrets';
import { SOFTHSM_MODULE } from '../support/softhsm';
import { completeSoftHsmWizard, SOFTHSM_SETUP, wizardSecrets, withStore } from '../support/wizard';
import { logIn } from '../web/support/http-wizard';
import { csrfToken, WebClient } from '../web/support/web-client';

/**
 * Issue 11's round trip: a populated SoftHSM install (devices, credentials, CAs, 100,000 secret
 * values) rotates its KEK and then its DEK with `keyward rotate` in a CLI process beside a running
 * `keyward start`, while a client keeps making requests that read and write secrets; every one is
 * answered. Afterwards the token (read by pkcs11-tool) holds one KEK, the one the database names; no
 * value carries the old DEK's key id (counted from the bytes); and every secret reads back
 * byte-equal through keyward and through a reader written from docs/formats.md alone.
 */
jest.setTimeout(300_000);

const VALUES = 100_000;
/** Made through the repository, revealed through the devices page during the rotations. */
const DEVICES = 200;
const CREDENTIALS = VALUES - 2 * DEVICES;
const KEK_LABEL = 'trustpoint-kek';

const secrets = wizardSecrets();
/** `table.column#id` → the plaintext written. */
const expected = new Map<string, string>();
const field = (table: string, column: string, id: number) => `${table}.${column}#${id}`;

/** A secret with multi-byte UTF-8 now and then, nothing HTML would escape; a few are registered for the leak scan. */
function secretValue(kind: string, i: number): string {
  const value = `${kind}-${i}-${randomBytes(9 + (i % 24)).toString('base64url')}${i % 7 === 0 ? '-äöü€𝄞' : ''}`;
  if (i < 4) registerSecret(value);
  return value;
}

function pemLike(i: number): string {
  const body = randomBytes(100 + (i % 90))
    .toString('base64')
    .replace(/(.{64})/g, '$1\n');
  return `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`;
}

interface Outcome {
  at: number;
  what: string;
  problem: string | null;
}

/**
 * An administrator's traffic: /readyz and the status page in one loop; in the other, a device
 * secret revealed (and compared) and now and then a device created with secrets of its own.
 */
class Traffic {
  readonly outcomes: Outcome[] = [];
  readonly created: Array<{ name: string; est: string; cmp: string }> = [];
  private running = true;
  private loops: Array<Promise<void>> = [];
  private serial = 0;

  constructor(
    private readonly client: WebClient,
    private readonly csrf: string,
    private readonly devices: Array<{ id: number; est: string; cmp: string }>,
  ) {}

  start(): void {
    this.loops = [this.probeLoop(), this.secretLoop()];
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  during(from: number, to: number): Outcome[] {
    return this.outcomes.filter((o) => o.at >= from && o.at <= to);
  }

  private async record(what: string, request: () => Promise<string | null>): Promise<void> {
    const at = Date.now();
    let problem: string | null;
    try {
      problem = await request();
    } catch (error) {
      problem = (error as Error).message;
    }
    this.outcomes.push({ at, what, problem });
  }

  private async probeLoop(): Promise<void> {
    while (this.running) {
      await this.record('readyz', async () => {
        const r = await this.client.get('/readyz');
        return r.status === 200 ? null : `HTTP ${r.status} ${r.body.trim()}`;
      });
      await this.record('status', async () => {
        const r = await this.client.get('/status');
        return r.status === 200 ? null : `HTTP ${r.status} ${r.location ?? ''}`;
      });
    }
  }

  private async secretLoop(): Promise<void> {
    while (this.running) {
      const n = ++this.serial;
      if (n % 10 === 0) {
        const device = { name: `during-${n}`, est: secretValue('est-during', n), cmp: secretValue('cmp-during', n) };
        await this.record('create', async () => {
          const r = await this.client.post('/devices', { _csrf: this.csrf, name: device.name, estPassword: device.est, cmpSharedSecret: device.cmp });
          if (r.status !== 303) return `HTTP ${r.status}`;
          this.created.push(device);
          return null;
        });
        continue;
      }
      const device = this.devices[n % this.devices.length]!;
      const which = n % 2 ? 'estPassword' : 'cmpSharedSecret';
      await this.record('reveal', async () => {
        const r = await this.client.post(`/devices/${device.id}/reveal`, { _csrf: this.csrf, which });
        if (r.status !== 200) return `HTTP ${r.status}`;
        const shown = /id="revealed-secret">([^<]*)</.exec(r.body)?.[1];
        return shown === (which === 'estPassword' ? device.est : device.cmp) ? null : `device ${device.id} ${which}: another value was shown`;
      });
    }
  }
}

/** Every value of the secret columns, as stored (docs/formats.md §4), read with a connection of its own. */
async function storedValues(db: Knex): Promise<Array<{ table: string; column: string; id: number; raw: Buffer }>> {
  const out: Array<{ table: string; column: string; id: number; raw: Buffer }> = [];
  for (const [table, columns] of Object.entries(ALL_SECRET_COLUMNS_PER_DOCS)) {
    for (const row of await db(table).select<Array<Record<string, Buffer | number | null>>>('id', ...columns)) {
      for (const column of columns) if (row[column] !== null) out.push({ table, column, id: Number(row.id), raw: Buffer.from(row[column] as Buffer) });
    }
  }
  return out;
}

/** The token's secret keys as pkcs11-tool (an independent client) lists them. */
function tokenSecretKeys(cli: CliHome): Array<{ label: string; id: string }> {
  const listing = execFileSync('pkcs11-tool', ['--module', SOFTHSM_MODULE, '--token-label', SOFTHSM_SETUP.label, '--login', '--pin', 'env:KW_TEST_PIN', '--list-objects', '--type', 'secrkey'], {
    env: { ...cli.env, KW_TEST_PIN: secrets.pin },
    encoding: 'utf8',
  });
  return listing
    .split(/\n(?=\S)/)
    .filter((block) => block.startsWith('Secret Key Object'))
    .map((block) => ({ label: /label:\s+(.*)/.exec(block)?.[1]?.trim() ?? '', id: /ID:\s+([0-9a-f]+)/.exec(block)?.[1] ?? '' }));
}

function expectRun(run: CliRun, what: string): void {
  if (run.status !== 0) throw new Error(`${what} exited ${run.status}: ${run.stderr}`);
}

describe('key rotation round trip on a populated SoftHSM install', () => {
  const cli = new CliHome('rotation-round-trip');
  let raw: Knex;
  let devices: Array<{ id: number; est: string; cmp: string }>;
  let before: { dekKeyId: string; kekId: string; dek: Buffer };
  let server: ChildProcess | null = null;
  let client: WebClient;
  let csrf: string;

  beforeAll(async () => {
    expectRun(cli.run(['boot']), 'boot');
    completeSoftHsmWizard(cli, secrets);
    devices = await withStore(cli, async (store, keyring) => {
      const made: Array<{ id: number; est: string; cmp: string }> = [];
      for (let i = 0; i < DEVICES; i++) {
        const est = secretValue('est', i);
        const cmp = secretValue('cmp', i);
        const id = await store.devices.create({ name: `device-${i}`, estPassword: est, cmpSharedSecret: cmp });
        made.push({ id, est, cmp });
        expected.set(field('devices', 'est_password', id), est);
        expected.set(field('devices', 'cmp_shared_secret', id), cmp);
      }
      // The bulk, sealed by keyward's codec and counted as the repository counts, in batched transactions.
      const codec = await store.secrets.codec();
      const at = new Date().toISOString();
      const pems = new Map<string, string>();
      for (let start = 0; start < CREDENTIALS; start += 5000) {
        await store.db.transaction(async (trx) => {
          const rows = [];
          for (let i = start; i < Math.min(CREDENTIALS, start + 5000); i++) {
            const pem = pemLike(i);
            pems.set(`credential-${i}`, pem);
            rows.push({ name: `credential-${i}`, private_key: codec.seal(pem, { table: 'credentials', column: 'private_key' }), certificate_pem: null, created_at: at });
          }
          for (let b = 0; b < rows.length; b += 400) await trx('credentials').insert(rows.slice(b, b + 400));
          await store.keyMaterial.addEncryptions(keyring.current!, rows.length, trx);
        });
      }
      for (const { id, name } of await store.db<CredentialRow>('credentials').select('id', 'name')) expected.set(field('credentials', 'private_key', Number(id)), pems.get(name)!);
      const credentialId = (await store.credentials.list())[0]!.id;
      await store.cas.create({ name: 'db-ca', keyLocation: 'db', credentialId });
      await store.cas.create({ name: 'token-ca', keyLocation: 'token', tokenKeyLabel: 'ca-key' });
      const primary = (await store.keyMaterial.current())!;
      // Kept by the test alone, to seal a value under it once it is retired.
      before = { dekKeyId: primary.dekKeyId, kekId: primary.wrapped!.kek.id, dek: Buffer.from(keyring.key(primary.dekKeyId)) };
      return made;
    });
    expect(expected.size).toBe(VALUES);
    raw = knex({ client: 'sqlite3', connection: { filename: join(cli.home, 'keyward.sqlite') }, useNullAsDefault: true });
  });

  afterAll(async () => {
    if (server) {
      server.kill('SIGTERM');
      await new Promise((resolve) => server!.once('exit', resolve));
    }
    await raw?.destroy();
    before?.dek.fill(0);
  });

  it('rotates the KEK and then the DEK from the CLI while the server answers every request', async () => {
    const started = await cli.startServer();
    server = started.child;
    client = new WebClient(`https://127.0.0.1:${started.port}`);
    await logIn(client, 'admin', secrets.admin);
    csrf = csrfToken((await client.get('/devices')).body)!;
    expect(csrf).toEqual(expect.any(String));
    {
      const traffic = new Traffic(client, csrf, devices);
      traffic.start();

      const kekFrom = Date.now();
      const kek = await cli.runAsync(['rotate', 'kek']);
      const kekTo = Date.now();
      const dekFrom = Date.now();
      const dek = await cli.runAsync(['rotate', 'dek']);
      const dekTo = Date.now();
      await traffic.stop();

      expectRun(kek, 'rotate kek');
      expectRun(dek, 'rotate dek');
      // The progress bar, one line per tenth when stderr is not a terminal, ends at 100 %.
      expect(dek.stderr).toMatch(/re-encrypting \[#{30}\] 100% (\d+)\/\1 values/);
      const failed = traffic.outcomes.filter((o) => o.problem !== null);
      expect(failed).toEqual([]);
      for (const [what, from, to] of [
        ['kek', kekFrom, kekTo],
        ['dek', dekFrom, dekTo],
      ] as const) {
        const kinds = new Set(traffic.during(from, to).map((o) => o.what));
        expect({ rotation: what, kinds: [...kinds].sort() }).toEqual({ rotation: what, kinds: expect.arrayContaining(['readyz', 'reveal', 'status']) });
      }
      expect(traffic.created.length).toBeGreaterThan(0);
      for (const device of traffic.created) {
        const row = (await raw<DeviceRow>('devices').where({ name: device.name }).first('id'))!;
        expected.set(field('devices', 'est_password', Number(row.id)), device.est);
        expected.set(field('devices', 'cmp_shared_secret', Number(row.id)), device.cmp);
      }
      process.stdout.write(
        `rotation round trip: KEK ${((kekTo - kekFrom) / 1000).toFixed(1)} s with ${traffic.during(kekFrom, kekTo).length} requests, ` +
          `DEK ${((dekTo - dekFrom) / 1000).toFixed(1)} s with ${traffic.during(dekFrom, dekTo).length} requests, ${traffic.created.length} devices created meanwhile\n`,
      );

      // The server did not run the rotation; it still writes under the new DEK and reads old and new.
      const keyset = await raw<KeyMaterialRow>('key_material').whereNot({ state: 'retired' });
      expect(keyset.map((row) => row.state)).toEqual(['primary']);
      const after = keyset[0]!.dek_key_id;
      const est = secretValue('est-after', 1);
      const made = await client.post('/devices', { _csrf: csrf, name: 'after-rotation', estPassword: est, cmpSharedSecret: '' });
      expect(made.status).toBe(303);
      const row = (await raw<DeviceRow>('devices').where({ name: 'after-rotation' }).first())!;
      expect((row.est_password as Buffer).toString('hex', 1, 9)).toBe(after);
      expect((row.cmp_shared_secret as Buffer).toString('hex', 1, 9)).toBe(after);
      const revealed = await client.post(`/devices/${row.id}/reveal`, { _csrf: csrf, which: 'estPassword' });
      expect(/id="revealed-secret">([^<]*)</.exec(revealed.body)?.[1]).toBe(est);
      expected.set(field('devices', 'est_password', Number(row.id)), est);
    }
  });

  it('leaves one KEK on the token, the one the database names', async () => {
    const keyset = await raw<KeyMaterialRow>('key_material').whereNot({ state: 'retired' });
    const kekIds = new Set(keyset.map((row) => row.kek_id as string));
    expect(kekIds.size).toBe(1);
    const [kekId] = [...kekIds];
    expect(kekId).not.toBe(before.kekId);
    expect(tokenSecretKeys(cli)).toEqual([{ label: KEK_LABEL, id: kekId }]);
  });

  it('retires the old DEK: no value carries its key id, its copies are wiped', async () => {
    const values = await storedValues(raw);
    const byKeyId = new Map<string, number>();
    for (const { raw: bytes } of values) {
      expect(bytes[0]).toBe(0x01);
      const keyId = bytes.toString('hex', 1, 9);
      byKeyId.set(keyId, (byKeyId.get(keyId) ?? 0) + 1);
    }
    const primary = (await raw<KeyMaterialRow>('key_material').where({ state: 'primary' }).first())!;
    expect(byKeyId.get(before.dekKeyId) ?? 0).toBe(0);
    expect([...byKeyId.keys()]).toEqual([primary.dek_key_id]);
    expect(byKeyId.get(primary.dek_key_id)).toBeGreaterThanOrEqual(VALUES);
    expect(Number(primary.gcm_encryptions)).toBeGreaterThanOrEqual(VALUES);

    const old = (await raw<KeyMaterialRow>('key_material').where({ dek_key_id: before.dekKeyId }).first())!;
    expect({ state: old.state, wrapped: old.wrapped_dek, backupCopy: old.backup_copy }).toEqual({ state: 'retired', wrapped: null, backupCopy: null });
    // Its transition-log chain key stays readable, sealed under the new DEK (docs/audit-log.md).
    expect(await raw('log_chain_keys').count({ n: '*' })).toEqual([{ n: 1 }]);
    const job = (await raw<{ target_key_id: string; cursor_table: string | null; finished_at: string | null }>('dek_rotation_jobs').orderBy('id', 'desc').first())!;
    expect(job).toMatchObject({ target_key_id: primary.dek_key_id, cursor_table: null });
    expect(job.finished_at).not.toBeNull();

    const inspection = cli.inspect();
    expect(inspection.state).toBe('operational');
    expect(inspection.context.keyRotation ?? null).toBeNull();
    // Rows keyed by the retired DEK verify with its kept chain key: none is left unverifiable.
    const audit = cli.run(['audit', 'verify']);
    expect({ status: audit.status, stdout: audit.stdout }).toEqual({
      status: 0,
      stdout: expect.stringMatching(/^transition log intact: \d+ rows, head [0-9a-f]+\ndevice audit intact: \d+ entries\n$/),
    });
  });

  it('reads every secret back byte-equal with a reader written from docs/formats.md', async () => {
    const live = await raw<KeyMaterialRow>('key_material').whereNot({ state: 'retired' });
    const record = (await raw<BackupKeyRow>('backup_key').first('record'))!.record;
    const deks = await recoverDeksPerDocs(
      record,
      live.map((row) => ({ dekKeyId: row.dek_key_id, backupCopy: row.backup_copy as Buffer })),
      secrets.backup,
    );
    expect([...deks.keys()]).toEqual(live.map((row) => row.dek_key_id));
    let compared = 0;
    const mismatches: string[] = [];
    for (const { table, column, id, raw: bytes } of await storedValues(raw)) {
      const value = decryptWithKeysetPerDocs(bytes, deks, table, column).value;
      const want = expected.get(field(table, column, id));
      if (want === undefined) continue; // the TLS key, the canary, the chain key: they decrypted
      compared += 1;
      if (Buffer.compare(Buffer.from(value, 'utf8'), Buffer.from(want, 'utf8')) !== 0) mismatches.push(field(table, column, id));
    }
    expect(mismatches).toEqual([]);
    expect(compared).toBe(expected.size);
    for (const dek of deks.values()) dek.fill(0);
  });

  it('reads every secret back byte-equal through keyward', async () => {
    const mismatches = await withStore(cli, async (store) => {
      const wrong: string[] = [];
      for (const summary of await store.devices.list()) {
        const device = (await store.devices.get(summary.id))!;
        for (const [column, value] of [
          ['est_password', device.estPassword],
          ['cmp_shared_secret', device.cmpSharedSecret],
        ] as const) {
          const want = expected.get(field('devices', column, summary.id));
          if (want !== undefined && value !== want) wrong.push(field('devices', column, summary.id));
        }
      }
      // Every credential through keyward's field codec (what the repositories open with), every 997th
      // through the repository itself.
      const codec = await store.secrets.codec();
      expect(codec.encrypts).toBe(true);
      for (let after = 0; ;) {
        const rows = await store.db<CredentialRow>('credentials').select('id', 'private_key').where('id', '>', after).orderBy('id').limit(5000);
        for (const row of rows) {
          const id = Number(row.id);
          const want = expected.get(field('credentials', 'private_key', id));
          if (codec.open(row.private_key, { table: 'credentials', column: 'private_key' }) !== want) wrong.push(field('credentials', 'private_key', id));
          if (id % 997 === 0 && (await store.credentials.get(id))!.privateKeyPem !== want) wrong.push(`get ${id}`);
        }
        if (rows.length < 5000) break;
        after = Number(rows[rows.length - 1]!.id);
      }
      expect((await store.cas.list()).map((ca) => [ca.name, ca.active])).toEqual([
        ['db-ca', true],
        ['token-ca', true],
      ]);
      return wrong;
    });
    expect(mismatches).toEqual([]);
  });

  it('the server, which did not retire the old DEK, forgets it too: a value sealed under it is not opened', async () => {
    // As if restored from an old copy or written by a stale replica: a device whose secret is under the retired key id.
    const stale = secretValue('est-stale', 0);
    const [id] = await raw('devices').insert({
      name: 'sealed-under-retired-dek',
      est_password: encryptPerDocs(stale, before.dek, before.dekKeyId, 'devices', 'est_password'),
      cmp_shared_secret: null,
      created_at: new Date().toISOString(),
    });
    try {
      const revealed = await client.post(`/devices/${id}/reveal`, { _csrf: csrf, which: 'estPassword' });
      expect(revealed.body.includes(stale)).toBe(false);
      expect(revealed.status).not.toBe(200);
    } finally {
      await raw('devices').where({ id }).delete();
    }
  });
});
