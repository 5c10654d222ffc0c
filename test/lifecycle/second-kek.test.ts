import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliHome, type CliRun } from '../support/cli';
import { newSecret, registerSecretSource } from '../support/secrets';
import { SoftHsm, SOFTHSM_MODULE } from '../support/softhsm';
import { completeSoftHsmWizard, SOFTHSM_SETUP, wizardSecrets, withStore } from '../support/wizard';
import type { WrappedKey } from '../../hsm/key-wrapper';
import { Browser, pathOf } from '../web/support/browser';
import { logIn } from '../web/support/pages';
import { WebClient } from '../web/support/web-client';

/**
 * Issue 15's second KEK, on SoftHSM2 with two tokens in one token directory: the keyset wrapped
 * under both KEKs; the first token's directory deleted, BOOT goes operational from the second KEK
 * with no password and the status marks the first unhealthy; a new first token set up restores both
 * copies (pkcs11-tool, an independent client, unwraps each to the DEK keyward holds); rotation
 * covers both copies; removing the second KEK deletes its wraps and its key.
 */
jest.setTimeout(300_000);

const SECOND_LABEL = 'keyward-second';
const KEK_LABEL = 'trustpoint-kek';
const MECHANISM_CODES: Record<string, string> = { CKM_AES_KEY_WRAP: '0x2109', CKM_AES_KEY_WRAP_PAD: '0x210A' };

const hsm = new SoftHsm('second-kek');
const cli = new CliHome('second-kek', { SOFTHSM2_CONF: hsm.conf });
const secrets = wizardSecrets();
const estPassword = newSecret('est');
let second: ReturnType<SoftHsm['initToken']>;
let firstTokenDir: string;

/** Exit 0 and nothing on stderr but the re-encryption's progress bar. */
function ok(run: CliRun): CliRun {
  expect({ status: run.status, stderr: run.stderr.replace(/^keyward: re-encrypting .*\n/gm, '') }).toEqual({ status: 0, stderr: '' });
  return run;
}

type Inspection = ReturnType<CliHome['inspect']> & { keks: Array<{ kek: string; healthy: boolean; since: string; problem: string | null }> };
const inspect = () => JSON.parse(ok(cli.run(['inspect', '--json', '--history', '1000'])).stdout) as Inspection;

/** Every live DEK's wraps, primary and second, with the DEK keyward unwraps (this process, through keyward's own code). */
async function keyset(): Promise<Array<{ dekKeyId: string; state: string; dek: Buffer; primary: WrappedKey; second: WrappedKey | undefined }>> {
  return withStore(cli, async (store, keyring) => {
    const seconds = await store.secondKek.wraps();
    return (await store.keyMaterial.keyset()).map((record) => ({
      dekKeyId: record.dekKeyId,
      state: record.state,
      dek: Buffer.from(keyring.key(record.dekKeyId)),
      primary: record.wrapped!,
      second: seconds.get(record.dekKeyId),
    }));
  });
}

/**
 * pkcs11-tool unwraps the blob under the KEK with this CKA_ID on the token into a session-less
 * token object, prints its value, and the object is deleted again: the DEK as an independent client reads it.
 */
function unwrapWithPkcs11Tool(token: { label: string; pin: string }, wrapped: WrappedKey): Buffer {
  const blob = join(hsm.dir, 'wrapped.bin');
  writeFileSync(blob, wrapped.blob);
  const env = { ...hsm.env, KW_TEST_PIN: token.pin };
  const login = ['--token-label', token.label, '--login', '--pin', 'env:KW_TEST_PIN'];
  try {
    const out = hsm.tool(
      [
        ...login,
        '--unwrap',
        '--mechanism',
        MECHANISM_CODES[wrapped.mechanism]!,
        '--id',
        wrapped.kek.id,
        '-i',
        blob,
        '--key-type',
        'AES:',
        '--application-id',
        'ee01',
        '--application-label',
        'kw-check',
        '--extractable',
      ],
      env,
    );
    return Buffer.from(/VALUE:\s+([0-9a-f]+)/.exec(out)![1]!, 'hex');
  } finally {
    hsm.tool([...login, '--delete-object', '--type', 'secrkey', '--id', 'ee01'], env);
    rmSync(blob, { force: true });
  }
}

/** The KEKs (CKA_ID hex) under keyward's label on a token, as pkcs11-tool lists them. */
function keksOn(token: { label: string; pin: string }): string[] {
  const out = hsm.tool(['--token-label', token.label, '--login', '--pin', 'env:KW_TEST_PIN', '--list-objects', '--type', 'secrkey'], { ...hsm.env, KW_TEST_PIN: token.pin });
  return [...out.matchAll(/label:\s+(\S+)\s*\n\s+ID:\s+([0-9a-f]+)/g)].filter((m) => m[1] === KEK_LABEL).map((m) => m[2]!);
}

/** Both copies of every live DEK unwrap, through pkcs11-tool, to the DEK keyward holds. */
async function expectBothCopies(): Promise<void> {
  const deks = await keyset();
  expect(deks.length).toBeGreaterThan(0);
  const first = { label: SOFTHSM_SETUP.label, pin: secrets.pin };
  expect(keksOn(first)).toEqual([...new Set(deks.map((d) => d.primary.kek.id))]);
  expect(keksOn(second)).toEqual([...new Set(deks.map((d) => d.second!.kek.id))]);
  for (const dek of deks) {
    expect(unwrapWithPkcs11Tool(first, dek.primary).equals(dek.dek)).toBe(true);
    expect(unwrapWithPkcs11Tool(second, dek.second!).equals(dek.dek)).toBe(true);
  }
}

/**
 * A server on the degraded install: ready, /metrics marks the first KEK unhealthy, the status page
 * says so in a sentence and fits at both widths.
 */
async function expectServedDegraded(): Promise<void> {
  const { child, port } = await cli.startServer();
  const browser = await Browser.launch('second-kek');
  try {
    const client = new WebClient(`https://127.0.0.1:${port}`);
    expect((await client.get('/readyz')).status).toBe(200);
    const metrics = (await client.get('/metrics')).body;
    expect(metrics).toMatch(/^keyward_kek_healthy\{kek="primary"\} 0$/m);
    expect(metrics).toMatch(/^keyward_kek_healthy\{kek="second"\} 1$/m);
    expect(metrics).toMatch(/^keyward_kek_health_since_seconds\{kek="primary"\} \d+/m);
    const page = browser.page;
    await page.goto(`https://127.0.0.1:${port}/status`);
    expect(pathOf(page)).toBe('/login');
    await logIn(browser, 'admin', secrets.admin);
    expect(pathOf(page)).toBe('/status');
    expect(await page.getAttribute('.kek-health[data-kek="primary"]', 'data-healthy')).toBe('false');
    expect(await page.getAttribute('.kek-health[data-kek="second"]', 'data-healthy')).toBe('true');
    expect(await page.textContent('.kek-unhealthy[data-kek="primary"]')).toMatch(/keyward runs from the second KEK\. Set up a new first token/);
    expect(await browser.shot('status-first-kek-lost', page)).toEqual([]);
  } finally {
    await browser.close();
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}

beforeAll(async () => {
  ok(cli.run(['boot']));
  completeSoftHsmWizard(cli, secrets);
  firstTokenDir = readdirSync(hsm.tokenDir)[0]!;
  second = hsm.initToken(SECOND_LABEL);
  registerSecretSource(join(cli.home, 'secrets', 'hsm-second-pin'));
  await withStore(cli, (store) => store.devices.create({ name: 'field-device', estPassword, cmpSharedSecret: null }));
});

it('refuses the first token as the second KEK, changing nothing', async () => {
  const run = cli.run(['kek', 'add-second', '--module', SOFTHSM_MODULE, '--token-label', SOFTHSM_SETUP.label, '--pin-file', cli.secretFile(secrets.pin)]);
  expect(run.status).not.toBe(0);
  expect(run.stderr).toMatch(/holds the primary KEK already: the second KEK belongs in another token/);
  expect(inspect().context.lastError).toMatchObject({ code: 'SECOND_KEK_REFUSED' });
  expect(inspect().state).toBe('operational');
  expect(await withStore(cli, async (store) => store.secondKek.config())).toBeNull();
});

it('wraps every live DEK under the second KEK; either token lost, the other one serves', async () => {
  ok(cli.run(['kek', 'add-second', '--module', SOFTHSM_MODULE, '--token-label', SECOND_LABEL, '--pin-file', second.pinFile]));
  const added = inspect();
  expect(added.state).toBe('operational');
  // The transition log names the token and the key ids, never a PIN.
  const done = added.history.find((h) => h.eventType === 'addSecondKek:done')!;
  const deks = await keyset();
  expect(done.payload).toEqual({ output: { tokenLabel: SECOND_LABEL, kekId: deks[0]!.second!.kek.id, reused: false, dekKeyIds: deks.map((d) => d.dekKeyId) } });
  expect(JSON.stringify(added.history)).not.toContain(second.pin);
  await expectBothCopies();

  // The first token's directory deleted: BOOT goes operational from the second KEK, no password given.
  rmSync(join(hsm.tokenDir, firstTokenDir), { recursive: true, force: true });
  ok(cli.run(['boot']));
  const degraded = inspect();
  expect(degraded.state).toBe('operational');
  expect((degraded.context.startup as { kekHealth?: unknown }).kekHealth).toEqual({ primary: false, second: true });
  expect(degraded.keks.map(({ kek, healthy, problem }) => ({ kek, healthy, problem }))).toEqual([
    { kek: 'primary', healthy: false, problem: 'TOKEN_MISSING' },
    { kek: 'second', healthy: true, problem: null },
  ]);
  expect(await withStore(cli, async (store) => (await store.devices.findByName('field-device'))!.estPassword)).toBe(estPassword);
  expect(degraded.accepts).toContain('SETUP_HSM');
  await expectServedDegraded();

  // A new first token replaces the lost one from the second KEK, without the password.
  ok(cli.send('SETUP_HSM', SOFTHSM_SETUP, { pin: secrets.pin, soPin: secrets.soPin }));
  expect(inspect().state).toBe('operational');
  await expectBothCopies();
  ok(cli.run(['boot']));
  const restored = inspect();
  expect(restored.keks.map(({ kek, healthy }) => ({ kek, healthy }))).toEqual([
    { kek: 'primary', healthy: true },
    { kek: 'second', healthy: true },
  ]);
  expect(Date.parse(restored.keks[0]!.since)).toBeGreaterThan(Date.parse(degraded.keks[0]!.since));
});

it('rotates every copy: a new DEK under both KEKs, a new first KEK beside the same second one', async () => {
  const before = await keyset();
  ok(cli.run(['rotate', 'dek']));
  const afterDek = await keyset();
  expect(afterDek.map((d) => d.dekKeyId)).not.toContain(before[0]!.dekKeyId);
  expect(afterDek.every((d) => d.second !== undefined)).toBe(true);
  // The retired DEK's second wrap went with it.
  const wrapped = await withStore(cli, async (store) => [...(await store.secondKek.wraps()).keys()]);
  expect(wrapped).toEqual(afterDek.map((d) => d.dekKeyId));

  ok(cli.run(['rotate', 'kek']));
  const afterKek = await keyset();
  expect(afterKek[0]!.primary.kek.id).not.toBe(afterDek[0]!.primary.kek.id);
  expect(afterKek[0]!.second!.blob.equals(afterDek[0]!.second!.blob)).toBe(true);
  await expectBothCopies();
});

it('removes the second KEK: its wraps and its key go, the first KEK alone serves', async () => {
  ok(cli.run(['kek', 'remove-second']));
  expect(keksOn(second)).toEqual([]);
  expect(await withStore(cli, async (store) => ({ config: await store.secondKek.config(), wraps: (await store.secondKek.wraps()).size, health: await store.secondKek.health() }))).toEqual({
    config: null,
    wraps: 0,
    health: [],
  });
  ok(cli.run(['boot']));
  const after = inspect();
  expect(after.state).toBe('operational');
  expect((after.context.startup as { kekHealth?: unknown }).kekHealth).toBeUndefined();
});
