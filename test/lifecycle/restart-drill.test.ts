import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { CliHome } from '../support/cli';
import { newSecret } from '../support/secrets';
import { destroyKek } from '../support/softhsm';
import { completeSoftHsmWizard, SOFTHSM_SETUP, wizardSecrets, withStore } from '../support/wizard';

/**
 * The restart drill of the lifecycle issue, in real processes through the CLI: a completed SoftHSM
 * install with a device, the token directory deleted (or only the KEK destroyed), BOOT, token set-up,
 * a wrong password refused, the right one, and the EST password read back unchanged. Each test makes
 * its own install, so any one runs alone.
 */
jest.setTimeout(180_000);

const HSM = SOFTHSM_SETUP;

type Secrets = ReturnType<typeof wizardSecrets>;

/** A completed SoftHSM install with one device. */
async function completedInstall(name: string): Promise<{ cli: CliHome; secrets: Secrets; estPassword: string }> {
  const secrets = wizardSecrets();
  const estPassword = newSecret('est');
  const cli = new CliHome(`restart-drill-${name}`);
  expect(cli.run(['boot']).status).toBe(0);
  completeSoftHsmWizard(cli, secrets);
  expect(cli.inspect().wizardState).toBe('WIZARD_COMPLETED');
  await withStore(cli, (store) => store.devices.create({ name: 'field-device', estPassword }));
  return { cli, secrets, estPassword };
}

describe('restart drill through the CLI', () => {
  function wrongThenRight(cli: CliHome, secrets: Secrets): void {
    const before = cli.inspect();
    const wrong = cli.run(['send', 'SUBMIT_BACKUP_PASSWORD', '--secret', 'password=stdin'], { stdin: `${newSecret('wrong')}\n` });
    expect(wrong.status).toBe(5);
    expect(wrong.stderr).toMatch(/backup password is wrong/);
    const after = cli.inspect();
    expect(after.state).toBe(before.state);
    expect(after.wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    expect(after.context.passwordFailures).toBe((before.context.passwordFailures as number) + 1);
    const right = cli.run(['send', 'SUBMIT_BACKUP_PASSWORD', '--secret', 'password=stdin'], { stdin: `${secrets.backup}\n` });
    expect(right.status).toBe(0);
    expect(cli.inspect()).toMatchObject({ state: 'operational', wizardState: 'WIZARD_COMPLETED' });
  }

  /** The whole token directory deleted: a new token with new PINs (returned; `secrets.pin` becomes the new one), then the password. */
  function recoverFromTokenLoss(cli: CliHome, secrets: Secrets): { pin: string; soPin: string } {
    rmSync(cli.tokenDir, { recursive: true, force: true });
    mkdirSync(cli.tokenDir);
    const boot = cli.run(['boot']);
    expect(boot.status).toBe(0);
    expect(cli.inspect()).toMatchObject({ wizardState: 'WIZARD_SETUP_HSM_AUTORESTORE', scenario: 'RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED' });
    const newPins = { pin: newSecret('pin'), soPin: newSecret('sopin') };
    expect(cli.send('SETUP_HSM', HSM, newPins).status).toBe(0);
    expect(cli.inspect().wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    wrongThenRight(cli, secrets);
    secrets.pin = newPins.pin;
    return newPins;
  }

  it('recovers after the whole token directory is deleted', async () => {
    const { cli, secrets, estPassword } = await completedInstall('token-deleted');
    recoverFromTokenLoss(cli, secrets);
    expect(await withStore(cli, async (store) => (await store.devices.findByName('field-device'))!.estPassword)).toBe(estPassword);
    // And it stays recovered across another restart.
    expect(cli.run(['boot']).status).toBe(0);
    expect(cli.inspect().state).toBe('operational');
  });

  /** Only the KEK destroyed, the token kept: straight to the backup password. */
  function recoverFromKekLoss(cli: CliHome, secrets: Secrets): void {
    destroyKek(cli.env.SOFTHSM2_CONF!, secrets.pin);
    expect(cli.run(['boot']).status).toBe(0);
    expect(cli.inspect()).toMatchObject({ wizardState: 'WIZARD_AUTO_RESTORE_PASSWORD', scenario: 'RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED' });
    wrongThenRight(cli, secrets);
  }

  it('recovers when only the KEK is destroyed and the token is kept', async () => {
    const { cli, secrets, estPassword } = await completedInstall('kek-destroyed');
    recoverFromKekLoss(cli, secrets);
    expect(await withStore(cli, async (store) => (await store.devices.findByName('field-device'))!.estPassword)).toBe(estPassword);
  });

  it('keeps every secret it was given out of the snapshot, the context, the transition log and the CLI log', async () => {
    const { cli, secrets, estPassword } = await completedInstall('secrets');
    const first = { ...secrets };
    // Both recoveries too: new PINs, and wrong and right backup passwords, went through the CLI.
    const newPins = recoverFromTokenLoss(cli, secrets);
    recoverFromKekLoss(cli, secrets);
    const all = [...new Set([...Object.values(first), ...Object.values(newPins), ...Object.values({ ...secrets }), estPassword])];
    const rows = await withStore(cli, async (store) => ({
      lifecycle: JSON.stringify(await store.db('lifecycle').select()),
      log: JSON.stringify(await store.db('transition_log').select()),
    }));
    const inspection = JSON.stringify(cli.inspect());
    const log = readFileSync(cli.log, 'utf8');
    expect(rows.log.length).toBeGreaterThan(1000);
    for (const secret of all) {
      expect(rows.lifecycle).not.toContain(secret);
      expect(rows.log).not.toContain(secret);
      expect(inspection).not.toContain(secret);
      expect(log).not.toContain(secret);
    }
  });

  it('refused events, bad payloads and secrets as arguments change nothing and say why', async () => {
    const { cli } = await completedInstall('refusals');
    const before = cli.inspect();
    const notNow = cli.send('APPLY_TLS');
    expect(notNow.status).toBe(3);
    expect(notNow.stderr).toMatch(/APPLY_TLS is not accepted in state operational/);
    const badPayload = cli.run(['send', 'SELECT_STORAGE', '--payload', '{"storageType":"floppy"}']);
    expect(badPayload.status).toBe(3);
    const secretInPayload = cli.run(['send', 'SUBMIT_BACKUP_PASSWORD', '--payload', '{"password":"nope-not-here"}']);
    expect(secretInPayload.status).toBe(3);
    expect(secretInPayload.stderr).toMatch(/must not be in the payload/);
    expect(secretInPayload.stderr).not.toContain('nope-not-here');
    const secretAsArgument = cli.run(['send', 'SUBMIT_BACKUP_PASSWORD', '--secret', 'password=hunter2-on-argv']);
    expect(secretAsArgument.status).toBe(2);
    expect(secretAsArgument.stderr).toMatch(/NAME=stdin, NAME=file:PATH or NAME=env:VAR/);
    expect(cli.run(['send', 'BOOT']).status).toBe(3);
    expect(cli.inspect().revision).toBe(before.revision);
  });
});
