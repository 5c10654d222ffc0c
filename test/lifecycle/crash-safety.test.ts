import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { openBackupKey, openDekCopy } from '../../crypto/backup-key';
import { CliHome } from '../support/cli';
import { newSecret } from '../support/secrets';
import { SOFTHSM_MODULE } from '../support/softhsm';
import { withStore } from '../support/wizard';

/**
 * Crash safety: the process is killed with SIGKILL inside each effect of the wizard's HSM set-up and
 * of auto-restore (at its start, at every checkpoint inside it, and after it finished but before its
 * outcome was recorded), started again, and driven on: it reaches the same end, with every secret intact.
 */
jest.setTimeout(600_000);

const HSM = { hsmType: 'softhsm', modulePath: SOFTHSM_MODULE, label: 'Trustpoint-SoftHSM' };
const secrets = { pin: newSecret('pin'), soPin: newSecret('sopin'), backup: `Bk-${newSecret('backup')}`, admin: `Ad-${newSecret('admin')}` };
const estPassword = newSecret('est');

function hsmArgs(cli: CliHome): string[] {
  return ['send', 'SETUP_HSM', '--payload', JSON.stringify(HSM), '--secret', `pin=file:${cli.secretFile(secrets.pin)}`, '--secret', `soPin=file:${cli.secretFile(secrets.soPin)}`];
}

function ok(cli: CliHome, args: string[], stdin?: string): void {
  const run = cli.run(args, { stdin });
  expect({ args: args.slice(0, 2), status: run.status, stderr: run.stderr }).toEqual({ args: args.slice(0, 2), status: 0, stderr: '' });
}

/** After the crash: boot, then answer whatever the machine asks until it is where it should be. */
function driveOn(cli: CliHome, goal: 'setupMode' | 'operational'): void {
  ok(cli, ['boot']);
  for (let step = 0; step < 8; step++) {
    const { state, wizardState } = cli.inspect();
    if (goal === 'setupMode' && wizardState === 'WIZARD_SETUP_MODE') return;
    if (goal === 'operational' && state === 'operational') return;
    switch (wizardState) {
      case 'WIZARD_SETUP_CRYPTO_STORAGE':
        ok(cli, ['send', 'SELECT_STORAGE', '--payload', '{"storageType":"softhsm"}']);
        break;
      case 'WIZARD_SETUP_HSM':
      case 'WIZARD_SETUP_HSM_AUTORESTORE':
        ok(cli, hsmArgs(cli));
        break;
      case 'WIZARD_AUTO_RESTORE_PASSWORD':
        ok(cli, ['send', 'SUBMIT_BACKUP_PASSWORD', '--secret', 'password=stdin'], `${secrets.backup}\n`);
        break;
      default:
        throw new Error(`unexpected state ${state} (${wizardState}) after the crash`);
    }
  }
  throw new Error(`did not reach ${goal}`);
}

function finishWizard(cli: CliHome): void {
  ok(cli, ['send', 'CHOOSE_FRESH']);
  ok(cli, ['send', 'GENERATE_TLS', '--payload', '{"subjectAltNames":["localhost"]}']);
  ok(cli, ['send', 'APPLY_TLS']);
  ok(cli, ['send', 'SET_BACKUP_PASSWORD', '--secret', 'password=stdin'], `${secrets.backup}\n`);
  ok(cli, ['send', 'SKIP_DEMO_DATA']);
  ok(cli, ['send', 'CREATE_ADMIN', '--payload', '{"username":"admin"}', '--secret', 'password=stdin'], `${secrets.admin}\n`);
}

/** The same end: operational after a restart, the device's secret readable, the backup copy opens to the DEK in use. */
async function expectIntact(cli: CliHome): Promise<void> {
  ok(cli, ['boot']);
  expect(cli.inspect().state).toBe('operational');
  await withStore(cli, async (store, keyring) => {
    expect((await store.devices.findByName('field-device'))!.estPassword).toBe(estPassword);
    const record = (await store.keyMaterial.current())!;
    const backupKey = await openBackupKey((await store.keyMaterial.backupKey())!.record, secrets.backup);
    const dek = openDekCopy(record.backupCopy!, backupKey);
    backupKey.wipe();
    expect(dek.key.equals(keyring.key(record.dekKeyId))).toBe(true);
    expect(await store.db('key_material').count({ n: '*' })).toEqual([{ n: 1 }]);
  });
}

const WIZARD_HSM_CHECKPOINTS = [
  'setUpToken:start',
  'setUpToken:before-script',
  'setUpToken:token-ready',
  'setUpToken:finished',
  'createKek:start',
  'createKek:before-generate',
  'createKek:finished',
  'createDek:start',
  'createDek:before-create',
  'createDek:finished',
];

describe.each(WIZARD_HSM_CHECKPOINTS)("a crash in the wizard's HSM set-up at %s", (checkpoint) => {
  it('is survived', async () => {
    const cli = new CliHome(`crash-wizard-${checkpoint.replace(':', '-')}`);
    ok(cli, ['boot']);
    ok(cli, ['send', 'SELECT_STORAGE', '--payload', '{"storageType":"softhsm"}']);
    await cli.killAt(checkpoint, hsmArgs(cli));
    driveOn(cli, 'setupMode');
    // The same end as without the crash: one token, one KEK, one DEK wrapped under it, usable.
    await withStore(cli, async (store, keyring) => {
      expect(await store.db('key_material').count({ n: '*' })).toEqual([{ n: 1 }]);
      expect(keyring.current).toBe((await store.keyMaterial.current())!.dekKeyId);
      await store.devices.create({ name: 'field-device', estPassword });
    });
    await withStore(cli, async (store) => expect((await store.devices.findByName('field-device'))!.estPassword).toBe(estPassword));
  });
});

describe('crashes during auto-restore', () => {
  let template: CliHome;

  beforeAll(async () => {
    template = new CliHome('crash-template');
    ok(template, ['boot']);
    ok(template, ['send', 'SELECT_STORAGE', '--payload', '{"storageType":"softhsm"}']);
    ok(template, hsmArgs(template));
    finishWizard(template);
    await withStore(template, async (store) => {
      await store.devices.create({ name: 'field-device', estPassword });
      await store.cas.create({ name: 'token-ca', keyLocation: 'token', tokenKeyLabel: 'ca-key' });
    });
  });

  /** The CA whose key was in the lost token ends deactivated, however the crash cut the recovery. */
  async function expectLostCaDeactivated(cli: CliHome): Promise<void> {
    const cas = await withStore(cli, (store) => store.cas.list());
    expect(cas.map((ca) => ({ name: ca.name, active: ca.active }))).toEqual([{ name: 'token-ca', active: false }]);
  }

  /** A copy of the completed install whose token directory is gone (a new container over the same data). */
  function lostToken(name: string): CliHome {
    const cli = new CliHome(name);
    // The data and the secrets directory travel; the token directory, this home's SoftHSM
    // configuration and the template's log do not.
    const skip = ['cli.log', 'softhsm2.conf', 'given', 'tokens'].map((name) => join(template.home, name));
    cpSync(template.home, cli.home, { recursive: true, verbatimSymlinks: true, filter: (src) => !skip.includes(src) });
    rmSync(cli.tokenDir, { recursive: true, force: true });
    mkdirSync(cli.tokenDir);
    return cli;
  }

  const BOOT_CHECKPOINTS = ['issueTlsCredential:start', 'issueTlsCredential:finished'];
  // The lost token's CAs are deactivated once the new token is set up, no longer at BOOT.
  const HSM_CHECKPOINTS = ['setUpToken:start', 'setUpToken:before-script', 'setUpToken:token-ready', 'setUpToken:finished', 'deactivateTokenCas:start', 'deactivateTokenCas:finished'];
  const RECOVERY_CHECKPOINTS = [
    'recoverDek:start',
    'recoverDek:before-open',
    'recoverDek:dek-recovered',
    'recoverDek:kek-ready',
    'recoverDek:rewrapped',
    'recoverDek:finished',
    'loadTlsFromDatabase:start',
    'loadTlsFromDatabase:finished',
  ];

  it.each(BOOT_CHECKPOINTS)('at %s, while BOOT prepares auto-restore', async (checkpoint) => {
    const cli = lostToken(`crash-boot-${checkpoint.replace(':', '-')}`);
    await cli.killAt(checkpoint, ['boot']);
    driveOn(cli, 'operational');
    await expectIntact(cli);
    await expectLostCaDeactivated(cli);
  });

  it.each(HSM_CHECKPOINTS)('at %s, while the new token is set up', async (checkpoint) => {
    const cli = lostToken(`crash-hsm-${checkpoint.replace(':', '-')}`);
    ok(cli, ['boot']);
    expect(cli.inspect().wizardState).toBe('WIZARD_SETUP_HSM_AUTORESTORE');
    await cli.killAt(checkpoint, hsmArgs(cli));
    driveOn(cli, 'operational');
    await expectIntact(cli);
    await expectLostCaDeactivated(cli);
  });

  it.each(RECOVERY_CHECKPOINTS)('at %s, while the DEK is recovered and re-wrapped', async (checkpoint) => {
    const cli = lostToken(`crash-recover-${checkpoint.replace(':', '-')}`);
    ok(cli, ['boot']);
    ok(cli, hsmArgs(cli));
    expect(cli.inspect().wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    const passwordFile = cli.secretFile(secrets.backup);
    await cli.killAt(checkpoint, ['send', 'SUBMIT_BACKUP_PASSWORD', '--secret', `password=file:${passwordFile}`]);
    driveOn(cli, 'operational');
    await expectIntact(cli);
    await expectLostCaDeactivated(cli);
  });
});
