import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../server/config';
import { testDir } from '../support/run-dir';

/**
 * scripts/setup.sh, which `npm start` and `npm test` run first: when nothing is missing (the suite
 * runs after it), a second run installs nothing, and it lays out a keyward home.
 */
describe('scripts/setup.sh', () => {
  it('installs nothing when nothing is missing, and lays out the home', () => {
    const home = join(testDir('setup'), 'var');
    const modules = statSync(join(PROJECT_ROOT, 'node_modules', '.keyward-installed')).mtimeMs;
    const run = spawnSync('bash', [join(PROJECT_ROOT, 'scripts', 'setup.sh')], { env: { ...process.env, KEYWARD_HOME: home }, encoding: 'utf8', timeout: 120_000 });
    expect({ status: run.status, installing: /installing/.test(run.stderr) }).toEqual({ status: 0, installing: false });
    expect(statSync(join(PROJECT_ROOT, 'node_modules', '.keyward-installed')).mtimeMs).toBe(modules);
    for (const dir of ['tokens', 'secrets']) expect(statSync(join(home, dir)).mode & 0o777).toBe(0o700);
    for (const dir of ['tls', 'backups']) expect(statSync(join(home, dir)).isDirectory()).toBe(true);
    expect(readFileSync(join(home, 'softhsm2.conf'), 'utf8')).toContain(`directories.tokendir = ${join(home, 'tokens')}`);
  }, 180_000);
});
