import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CliHome } from '../support/cli';
import { testDir } from '../support/run-dir';
import { newSecret } from '../support/secrets';

jest.setTimeout(120_000);

/**
 * Issue 8 item 10: `keyward backup` took "a" as the passphrase of an archive that holds every secret
 * of the store. The passphrase now meets the backup password's rules (effects/password-policy.ts);
 * a weak one is refused (exit 3) before anything is written.
 */
describe('CLI: the backup archive passphrase', () => {
  const cli = new CliHome('backup-passphrase');
  const out = testDir('backup-passphrase-out');

  beforeAll(() => {
    expect(cli.run(['boot']).status).toBe(0);
  });

  it.each([
    ['a', /at least 12 characters/],
    ['aaaaaaaaaaaaaaaaaaaaaaaa', /at least 5 different characters/],
    ['abcdefghijklmn', /two kinds of characters/],
  ])('refuses %j and writes nothing', (weak, message) => {
    const archive = join(out, `weak-${weak.length}.kwbak`);
    const run = cli.run(['backup', '--output', archive, '--passphrase-file', cli.secretFile(weak)]);
    expect(run.status).toBe(3);
    expect(run.stderr).toMatch(/^keyward: the backup passphrase needs/m);
    expect(run.stderr).toContain('(error code WEAK_PASSWORD, exit 3)');
    expect(run.stderr).toMatch(message);
    expect(readdirSync(out)).toEqual([]);
    expect(readdirSync(cli.home).filter((name) => name.startsWith('.backup-'))).toEqual([]);
  });

  it('takes a passphrase that meets the rules', () => {
    const archive = join(out, 'good.kwbak');
    const run = cli.run(['backup', '--output', archive, '--passphrase-file', cli.secretFile(`Pp-${newSecret('backup-passphrase')}`)]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(existsSync(archive)).toBe(true);
  });
});
