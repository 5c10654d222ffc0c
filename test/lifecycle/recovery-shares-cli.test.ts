import { rmSync, mkdirSync } from 'node:fs';
import { CliHome } from '../support/cli';
import { registerSecretShownIn } from '../support/secrets';
import { completeSoftHsmWizard, SOFTHSM_SETUP, wizardSecrets, withStore } from '../support/wizard';

jest.setTimeout(180_000);

/**
 * The CLI's side of recovery shares (docs/cli.md): `recovery-shares create` prints them once,
 * `recovery-shares verify` checks one from stdin, and after a token loss `send SUBMIT_RECOVERY_SHARE`
 * takes K from stdin, one per line, in the one process that holds them.
 */
describe('recovery shares through the CLI', () => {
  it('creates, verifies and recovers with 2 of 3 shares', async () => {
    const cli = new CliHome('recovery-shares');
    const secrets = wizardSecrets();
    expect(cli.run(['boot']).status).toBe(0);
    completeSoftHsmWizard(cli, secrets);
    const est = await withStore(cli, async (store) => {
      await store.devices.create({ name: 'cli-device', estPassword: secrets.admin.replace('Ad-', 'est-'), cmpSharedSecret: null });
      return (await store.devices.findByName('cli-device'))!.estPassword;
    });

    const made = cli.run(['recovery-shares', 'create', '--shares', '3', '--threshold', '2', '--json']);
    expect({ status: made.status, stderr: made.stderr }).toEqual({ status: 0, stderr: '' });
    const { shares, shareSetId, threshold } = JSON.parse(made.stdout) as { shares: string[]; shareSetId: string; threshold: number };
    for (const share of shares) registerSecretShownIn(share, cli.log);
    expect([shares.length, threshold]).toEqual([3, 2]);
    // The log row of the step: the set id and counts, never a share.
    const row = cli.inspect().history.find((entry) => entry.eventType === 'createRecoveryShares:done')!;
    expect(row.payload).toEqual({ output: { shareSetId, shares: 3, threshold: 2, dekKeyIds: [expect.stringMatching(/^[0-9a-f]{16}$/)] } });

    const verified = cli.run(['recovery-shares', 'verify'], { stdin: `${shares[1]}\n` });
    expect([verified.status, verified.stdout]).toEqual([0, `share 2 of 3 belongs to share set ${shareSetId} (2 needed to recover)\n`]);
    const mistyped = cli.run(['recovery-shares', 'verify'], { stdin: shares[1]!.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) });
    expect(mistyped.status).toBe(3);
    expect(mistyped.stderr).toContain('typo');
    expect(mistyped.stderr).not.toContain(shares[1]!.slice(6, 20));
    // SUBMIT_RECOVERY_SHARE is an auto-restore event: refused while operational, nothing held.
    expect(cli.run(['send', 'SUBMIT_RECOVERY_SHARE'], { stdin: `${shares[0]}\n` }).status).toBe(3);

    rmSync(cli.tokenDir, { recursive: true, force: true });
    mkdirSync(cli.tokenDir);
    expect(cli.run(['boot']).status).toBe(0);
    expect(cli.send('SETUP_HSM', SOFTHSM_SETUP, { pin: secrets.pin, soPin: secrets.soPin }).status).toBe(0);
    expect(cli.inspect().wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    // One share per command is not enough: the process that held it has ended.
    const one = cli.run(['send', 'SUBMIT_RECOVERY_SHARE'], { stdin: `${shares[2]}\n` });
    expect(one.status).toBe(0);
    expect(one.stderr).toContain('1 of 2 recovery shares are in');
    expect(cli.inspect().wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');

    const both = cli.run(['send', 'SUBMIT_RECOVERY_SHARE'], { stdin: `${shares[2]}\n\n${shares[0]!.toLowerCase()}\n` });
    expect(both.status).toBe(0);
    expect(cli.inspect().state).toBe('operational');
    expect(await withStore(cli, async (store) => (await store.devices.findByName('cli-device'))!.estPassword)).toBe(est);
  });
});
