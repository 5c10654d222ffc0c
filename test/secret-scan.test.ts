import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scanForSecrets } from './support/secret-scan';

describe('the end-of-suite secret scan', () => {
  it('finds a registered secret in any file, skips declared secret sources', () => {
    const root = mkdtempSync(join(tmpdir(), 'keyward-scan-'));
    mkdirSync(join(root, '.secrets'));
    mkdirSync(join(root, 'nested', 'deeper'), { recursive: true });
    writeFileSync(join(root, '.secrets', '1.txt'), 'password-abcdefgh123\npin-zyxw98765\n');
    writeFileSync(join(root, '.secrets', '1.sources'), `${join(root, 'token.pin')}\n`);
    writeFileSync(join(root, 'token.pin'), 'pin-zyxw98765\n');
    writeFileSync(join(root, 'nested', 'deeper', 'server.log'), Buffer.concat([Buffer.from([0, 1, 2]), Buffer.from('..password-abcdefgh123..')]));
    writeFileSync(join(root, 'clean.sqlite'), 'nothing here');
    const result = scanForSecrets(root);
    expect(result.secrets).toBe(2);
    expect(result.files).toBe(2);
    expect(result.leaks).toEqual([{ file: join(root, 'nested', 'deeper', 'server.log'), secretKind: 'password' }]);
  });

  it('lets a secret be shown by the one file registered for it (a set-up code on its console), and finds it everywhere else', () => {
    const root = mkdtempSync(join(tmpdir(), 'keyward-scan-'));
    mkdirSync(join(root, '.secrets'));
    const console1 = join(root, 'node-1', 'server-1.log');
    const console2 = join(root, 'node-2', 'server-1.log');
    mkdirSync(join(root, 'node-1'));
    mkdirSync(join(root, 'node-2'));
    writeFileSync(join(root, '.secrets', '1.txt'), 'ABCD-EFGH-JKMN-PQRS-TVWX-YZ01\n');
    writeFileSync(join(root, '.secrets', '1.shown'), `${console1}\tABCD-EFGH-JKMN-PQRS-TVWX-YZ01\n`);
    writeFileSync(console1, 'set-up code: ABCD-EFGH-JKMN-PQRS-TVWX-YZ01\n');
    writeFileSync(console2, 'set-up code: ABCD-EFGH-JKMN-PQRS-TVWX-YZ01\n');
    const result = scanForSecrets(root);
    expect(result.leaks).toEqual([{ file: console2, secretKind: 'ABCD' }]);
  });
});
