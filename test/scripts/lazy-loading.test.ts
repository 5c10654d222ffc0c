import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../server/config';
import { CliHome } from '../support/cli';
import { testDir } from '../support/run-dir';

/**
 * A command loads what it uses: `exit-codes` and `help` neither knex, the machine nor the runtime;
 * `inspect` no certificate code; a restart's `boot` neither the certificate generator nor the backup
 * and restore code.
 */
jest.setTimeout(120_000);

const RECORDER = join(PROJECT_ROOT, 'dist', 'test', 'support', 'record-loaded.js');

function loadedBy(cli: CliHome, args: string[]): string[] {
  const out = join(testDir('loaded'), 'loaded.json');
  const run = cli.run(args, { env: { NODE_OPTIONS: `--require ${RECORDER}`, KEYWARD_TEST_LOADED_OUT: out } });
  expect(run.status).toBe(0);
  return JSON.parse(readFileSync(out, 'utf8')) as string[];
}

const matching = (files: string[], pattern: RegExp) => files.filter((file) => pattern.test(file));

describe('lazy loading', () => {
  const cli = new CliHome('lazy-loading');

  it('answers exit-codes and help without the database, the machine or the runtime', () => {
    for (const command of [['exit-codes'], ['help']]) {
      const loaded = loadedBy(cli, command);
      expect({ command, heavy: matching(loaded, /node_modules\/(knex|xstate|zod|@peculiar|pkcs11js|sqlite3|pg)\/|dist\/server\/runtime\.js|dist\/machines\//) }).toEqual({ command, heavy: [] });
    }
  });

  it('inspects without any certificate code (neither generating nor reading one)', () => {
    expect(cli.run(['boot']).status).toBe(0);
    expect(matching(loadedBy(cli, ['inspect']), /node_modules\/@peculiar\/|dist\/tls\/(certificate|tls-files|generate)\.js/)).toEqual([]);
  });

  it('restarts without the certificate generator or the backup and restore code', () => {
    expect(cli.run(['boot']).status).toBe(0);
    expect(cli.send('SELECT_STORAGE', { storageType: 'software' }).status).toBe(0);
    const loaded = loadedBy(cli, ['boot']);
    expect(matching(loaded, /node_modules\/knex\//).length).toBeGreaterThan(0);
    // The served certificate is read (ASN.1, @peculiar/asn1-x509), never generated (@peculiar/x509). Of
    // the backup code only the archive's error classes, which an effect's error is told apart by, and
    // the small module that names a killed backup's temporaries (start-up removes them).
    expect(
      matching(loaded, /node_modules\/@peculiar\/x509\/|dist\/effects\/(restore-service|backup-service)\.js|dist\/tls\/generate\.js|dist\/backup\/(?!archive-errors\.js|stale-temporaries\.js)/),
    ).toEqual([]);
  });
});
