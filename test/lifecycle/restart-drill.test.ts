import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { CliHome } from '../support/cli';
import { newSecret } from '../support/secrets';
import { destroyKek } from '../support/softhsm';
import { completeSoftHsmWizard, SOFTHSM_SETUP, wizardSecrets, withStore } from '../support/wizard';

/**
 * The restart drill of the lifecycle issue, in real processes through the CLI: a completed SoftHSM
 * install with a device, the token directory deleted (then, again, only the KEK destroyed), BOOT,
 * token set-up, a wrong password refused, the right one, and the EST password read back unchanged.
 */
jest.setTimeout(180_000);

const HSM = SOFTHSM_SETUP;

describe('restart drill through the CLI', () => {
  const secrets = wizardSecrets();
  const estPassword = newSecret('est');
  let cli: CliHome;

  beforeAll(async () => {
    cli = new CliHome('restart-drill');
    expect(cli.run(['boot']).status).toBe(0);
    completeSoftHsmWizard(cli, secrets);
    expect(cli.inspect().wizardState).toBe('WIZARD_COMPLETED');
    await withStore(cli, (store) => store.devices.create({ name: 'field-device', estPassword }));
  });

  function wrongThenRight(): void {
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

  it('recovers after the whole token directory is deleted', async () => {
    rmSync(cli.tokenDir, { recursive: true, force: true });
    mkdirSync(cli.tokenDir);
    const boot = cli.run(['boot']);
    expect(boot.status).toBe(0);
    expect(cli.inspect()).toMatchObject({ wizardState: 'WIZARD_SETUP_HSM_AUTORESTORE', scenario: 'RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED' });
    // A new token with new PINs.
    const newPins = { pin: newSecret('pin'), soPin: newSecret('sopin') };
    expect(cli.send('SETUP_HSM', HSM, newPins).status).toBe(0);
    expect(cli.inspect().wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    wrongThenRight();
    expect(await withStore(cli, async (store) => (await store.devices.findByName('field-device'))!.estPassword)).toBe(estPassword);
    secrets.pin = newPins.pin;
    // And it stays recovered across another restart.
    expect(cli.run(['boot']).status).toBe(0);
    expect(cli.inspect().state).toBe('operational');
  });

  it('recovers again when only the KEK is destroyed and the token is kept', async () => {
    destroyKek(cli.env.SOFTHSM2_CONF!, secrets.pin);
    expect(cli.run(['boot']).status).toBe(0);
    expect(cli.inspect()).toMatchObject({ wizardState: 'WIZARD_AUTO_RESTORE_PASSWORD', scenario: 'RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED' });
    wrongThenRight();
    expect(await withStore(cli, async (store) => (await store.devices.findByName('field-device'))!.estPassword)).toBe(estPassword);
  });

  it('keeps every secret it was given out of the snapshot, the context, the transition log and the CLI log', async () => {
    const all = [...Object.values(secrets), estPassword];
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

  it('refused events, bad payloads and secrets as arguments change nothing and say why', () => {
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
