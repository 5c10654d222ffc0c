import { execFileSync } from 'node:child_process';
import { rmSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { openBackupKey, openDekCopy } from '../../crypto/backup-key';
import { CliHome } from '../support/cli';
import { newSecret } from '../support/secrets';
import { SOFTHSM_MODULE } from '../support/softhsm';
import { completeSoftHsmWizard, SOFTHSM_SETUP, withStore, wizardSecrets } from '../support/wizard';

/**
 * Crash safety of the key lifecycle (docs/lifecycle.md "Key rotation"): `keyward rotate kek|dek`
 * and `keyward pin change` are killed with SIGKILL at every checkpoint of every step (at its start,
 * inside it, and after it finished but before its outcome was recorded); `keyward boot` then
 * finishes the rotation (or, for a PIN change staged but not made, leaves the old PIN), and every
 * secret is intact. One install per describe; each crash runs one more rotation on it.
 */
jest.setTimeout(900_000);

const KEK_CHECKPOINTS = [
  'generateNextKek:start',
  'generateNextKek:before-generate',
  'generateNextKek:finished',
  'wrapKeysetUnderKek:start',
  'wrapKeysetUnderKek:before-commit',
  'wrapKeysetUnderKek:committed',
  'wrapKeysetUnderKek:finished',
  'destroyUnreferencedKeks:start',
  'destroyUnreferencedKeks:before-destroy',
  'destroyUnreferencedKeks:finished',
];

const DEK_CHECKPOINTS = [
  'addDek:start',
  'addDek:before-add',
  'addDek:finished',
  'promoteDek:start',
  'promoteDek:before-promote',
  'promoteDek:finished',
  'reencryptValues:start',
  'reencryptValues:before-batch',
  // The first batch of several: the job is killed half-way.
  'reencryptValues:batch-committed',
  'reencryptValues:finished',
  'retireOldDeks:start',
  'retireOldDeks:before-retire',
  'retireOldDeks:finished',
];

/** More rows than one batch of the job (500), so a kill after the first batch leaves work undone. */
const DEVICES = 700;

function ok(cli: CliHome, args: string[], stdin?: string): string {
  const run = cli.run(args, { stdin });
  expect({ args, status: run.status, stderr: run.stderr }).toEqual({ args, status: 0, stderr: expect.not.stringMatching(/error code/) });
  return run.stdout;
}

/** The secret keys with the KEK's label, as pkcs11-tool (an independent client) lists them: their CKA_IDs. */
function keksOnToken(cli: CliHome, pin: string): string[] {
  const listing = execFileSync('pkcs11-tool', ['--module', SOFTHSM_MODULE, '--token-label', SOFTHSM_SETUP.label, '--login', '--pin', 'env:KW_TEST_PIN', '--list-objects', '--type', 'secrkey'], {
    env: { ...cli.env, KW_TEST_PIN: pin },
    encoding: 'utf8',
  });
  return listing
    .split(/Secret Key Object/)
    .filter((object) => /label:\s+trustpoint-kek\s/.test(object))
    .map((object) => /ID:\s+([0-9a-f]+)/.exec(object)?.[1] ?? '');
}

async function populate(cli: CliHome, devices: Map<string, { est: string; cmp: string }>): Promise<void> {
  await withStore(cli, async (store) => {
    for (let i = 0; i < DEVICES; i++) {
      const values = { est: newSecret('est'), cmp: newSecret('cmp') };
      devices.set(`device-${i}`, values);
      await store.devices.create({ name: `device-${i}`, estPassword: values.est, cmpSharedSecret: values.cmp });
    }
  });
}

/**
 * The same end after every crash: operational with no rotation left, one KEK on the token and the
 * database naming it, one live DEK under which every value is, every secret readable, every live
 * DEK's backup copy opened by the backup password, and the transition log verified to the last row.
 */
async function expectIntact(cli: CliHome, pin: string, backupPassword: string, devices: Map<string, { est: string; cmp: string }>): Promise<{ kekId: string; dekKeyId: string }> {
  const inspection = cli.inspect();
  expect(inspection.state).toBe('operational');
  expect(inspection.context.keyRotation).toBeNull();
  const result = await withStore(cli, async (store, keyring) => {
    const keyset = await store.keyMaterial.keyset();
    expect(keyset.map((r) => r.state)).toEqual(['primary']);
    const [primary] = keyset;
    const counts = await store.reencryption.countValuesByKeyId();
    expect([...counts.keys()]).toEqual([primary!.dekKeyId]);
    expect(counts.get(primary!.dekKeyId)).toBeGreaterThanOrEqual(DEVICES * 2);
    for (const [name, values] of devices) {
      const device = (await store.devices.findByName(name))!;
      expect([device.estPassword, device.cmpSharedSecret]).toEqual([values.est, values.cmp]);
    }
    const backupKey = await openBackupKey((await store.keyMaterial.backupKey())!.record, backupPassword);
    expect(openDekCopy(primary!.backupCopy!, backupKey).key.equals(keyring.key(primary!.dekKeyId))).toBe(true);
    backupKey.wipe();
    return { kekId: primary!.wrapped!.kek.id, dekKeyId: primary!.dekKeyId };
  });
  expect(keksOnToken(cli, pin)).toEqual([result.kekId]);
  const audit = JSON.parse(ok(cli, ['audit', 'verify', '--json'])) as { ok: boolean; unverifiedRows: number };
  expect(audit).toMatchObject({ ok: true, unverifiedRows: 0 });
  return result;
}

describe('KEK and DEK rotation killed at every checkpoint', () => {
  const cli = new CliHome('rotation-crash');
  const secrets = wizardSecrets();
  const devices = new Map<string, { est: string; cmp: string }>();
  let last: { kekId: string; dekKeyId: string };

  beforeAll(async () => {
    ok(cli, ['boot']);
    completeSoftHsmWizard(cli, secrets);
    await populate(cli, devices);
    last = await expectIntact(cli, secrets.pin, secrets.backup, devices);
  });

  it('rotates the KEK without a crash, the server side of it seen by pkcs11-tool', async () => {
    const out = ok(cli, ['rotate', 'kek', '--json']);
    expect(JSON.parse(out)).toMatchObject({ outcome: 'applied', state: 'operational' });
    const now = await expectIntact(cli, secrets.pin, secrets.backup, devices);
    expect(now.kekId).not.toBe(last.kekId);
    expect(now.dekKeyId).toBe(last.dekKeyId);
    last = now;
  });

  it.each(KEK_CHECKPOINTS)('KEK rotation killed at %s: boot finishes it', async (checkpoint) => {
    await cli.killAt(checkpoint, ['rotate', 'kek']);
    ok(cli, ['boot']);
    const now = await expectIntact(cli, secrets.pin, secrets.backup, devices);
    expect(now.kekId).not.toBe(last.kekId);
    expect(now.dekKeyId).toBe(last.dekKeyId);
    last = now;
  });

  it('rotates the DEK without a crash, with a progress line', async () => {
    const run = cli.run(['rotate', 'dek']);
    expect(run.status).toBe(0);
    expect(run.stderr).toMatch(/re-encrypting \[#+\] 100% (\d+)\/\1 values/);
    const now = await expectIntact(cli, secrets.pin, secrets.backup, devices);
    expect(now.dekKeyId).not.toBe(last.dekKeyId);
    const history = cli.inspect().history.map((row) => JSON.stringify(row));
    // The log records the rotation by key ids: the DEK added, and the one retired.
    expect(history.some((row) => row.includes('addDek:done') && row.includes(now.dekKeyId))).toBe(true);
    expect(history.some((row) => row.includes('retireOldDeks:done') && row.includes(last.dekKeyId))).toBe(true);
    last = now;
  });

  it.each(DEK_CHECKPOINTS)('DEK rotation killed at %s: boot finishes it', async (checkpoint) => {
    await cli.killAt(checkpoint, ['rotate', 'dek']);
    ok(cli, ['boot']);
    const now = await expectIntact(cli, secrets.pin, secrets.backup, devices);
    expect(now.dekKeyId).not.toBe(last.dekKeyId);
    expect(now.kekId).toBe(last.kekId);
    last = now;
  });
});

describe('a token lost in the middle of a DEK rotation', () => {
  const cli = new CliHome('rotation-token-loss');
  const secrets = wizardSecrets();
  const devices = new Map<string, { est: string; cmp: string }>();

  it('auto-restore with the backup password recovers both DEKs, and the job then finishes', async () => {
    ok(cli, ['boot']);
    completeSoftHsmWizard(cli, secrets);
    await populate(cli, devices);
    const before = await withStore(cli, async (store) => (await store.keyMaterial.current())!.dekKeyId);
    await cli.killAt('reencryptValues:batch-committed', ['rotate', 'dek']);
    const live = await withStore(cli, async (store) => (await store.keyMaterial.keyset()).map((r) => [r.dekKeyId, r.state]));
    expect(live).toEqual([
      [expect.not.stringMatching(before), 'primary'],
      [before, 'active'],
    ]);

    for (const entry of readdirSync(cli.tokenDir)) rmSync(join(cli.tokenDir, entry), { recursive: true, force: true });
    mkdirSync(cli.tokenDir, { recursive: true });
    ok(cli, ['boot']);
    expect(cli.inspect().wizardState).toBe('WIZARD_SETUP_HSM_AUTORESTORE');
    expect(cli.send('SETUP_HSM', SOFTHSM_SETUP, { pin: secrets.pin, soPin: secrets.soPin }).status).toBe(0);
    expect(cli.inspect().wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    // The password step recovers both live DEKs; back in operation, the rotation resumes and ends.
    ok(cli, ['send', 'SUBMIT_BACKUP_PASSWORD', '--secret', 'password=stdin'], `${secrets.backup}\n`);
    const after = await expectIntact(cli, secrets.pin, secrets.backup, devices);
    expect(after.dekKeyId).toBe(live[0]![0]);
  });
});

describe('backup password change', () => {
  const cli = new CliHome('password-change');
  const secrets = wizardSecrets();
  const devices = new Map<string, { est: string; cmp: string }>();

  it('the old password stops working; the new one recovers the keyset after a token loss', async () => {
    ok(cli, ['boot']);
    completeSoftHsmWizard(cli, secrets);
    await populate(cli, devices);
    const wrong = cli.run(['password', 'change'], { stdin: `Wr-${newSecret('wrong')}\nNw-${newSecret('new')}\n` });
    expect(wrong.status).toBe(5);
    expect(wrong.stderr).toMatch(/backup password is wrong/);
    expect(cli.inspect().context.passwordFailures).toBe(1);

    const fresh = `Nw-${newSecret('backup')}`;
    ok(cli, ['password', 'change'], `${secrets.backup}\n${fresh}\n`);
    expect(cli.inspect().context.passwordFailures).toBe(0);
    await expectIntact(cli, secrets.pin, fresh, devices);

    for (const entry of readdirSync(cli.tokenDir)) rmSync(join(cli.tokenDir, entry), { recursive: true, force: true });
    ok(cli, ['boot']);
    expect(cli.send('SETUP_HSM', SOFTHSM_SETUP, { pin: secrets.pin, soPin: secrets.soPin }).status).toBe(0);
    const old = cli.run(['send', 'SUBMIT_BACKUP_PASSWORD', '--secret', 'password=stdin'], { stdin: `${secrets.backup}\n` });
    expect(old.status).toBe(5);
    expect(old.stderr).toMatch(/backup password is wrong/);
    ok(cli, ['send', 'SUBMIT_BACKUP_PASSWORD', '--secret', 'password=stdin'], `${fresh}\n`);
    await expectIntact(cli, secrets.pin, fresh, devices);
  });

  it('an administrator may authorize the change instead of the current password', async () => {
    const next = `Ad-${newSecret('backup')}`;
    const wrongAdmin = cli.run(['password', 'change', '--admin', 'admin'], { stdin: `Wr-${newSecret('wrong')}\n${next}\n` });
    expect(wrongAdmin.status).toBe(5);
    ok(cli, ['password', 'change', '--admin', 'admin'], `${secrets.admin}\n${next}\n`);
    await expectIntact(cli, secrets.pin, next, devices);
  });
});

describe('token PIN change', () => {
  const cli = new CliHome('pin-change');
  const secrets = wizardSecrets();
  const devices = new Map<string, { est: string; cmp: string }>();
  let pin = secrets.pin;

  beforeAll(async () => {
    ok(cli, ['boot']);
    completeSoftHsmWizard(cli, secrets);
    await populate(cli, devices);
  });

  it('changes the PIN on the token and in the PIN file; after a restart keyward logs in', async () => {
    const next = newSecret('pin');
    ok(cli, ['pin', 'change'], `${next}\n`);
    pin = next;
    ok(cli, ['boot']);
    await expectIntact(cli, pin, secrets.backup, devices);
    expect(() => keksOnToken(cli, secrets.pin)).toThrow();
  });

  it.each(['changeTokenPin:start', 'changeTokenPin:pin-staged', 'changeTokenPin:pin-set', 'changeTokenPin:finished'])(
    'killed at %s: the next start-up logs in with whichever PIN the token has, and it is the file’s',
    async (checkpoint) => {
      const next = newSecret('pin');
      await cli.killAt(checkpoint, ['pin', 'change', '--pin-file', cli.secretFile(next)]);
      ok(cli, ['boot']);
      // Staged only: the change did not happen. From C_SetPIN on: it is finished.
      if (checkpoint === 'changeTokenPin:pin-set' || checkpoint === 'changeTokenPin:finished') pin = next;
      await expectIntact(cli, pin, secrets.backup, devices);
    },
  );
});
