import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../server/config';
import { testDir } from '../support/run-dir';
import { newSecret, registerSecretSource } from '../support/secrets';

/** The second KEK's PIN as an orchestrator secret: the entrypoint copies the mounted file as it does the first token's. */
it('copies the mounted second PIN file into secrets/hsm-second-pin (0600), prints no PIN, refuses one it cannot read', () => {
  const dir = testDir('entrypoint-second-pin');
  const given = join(dir, 'given', 'second-pin');
  mkdirSync(join(dir, 'given'), { recursive: true });
  const pin = newSecret('pin');
  writeFileSync(given, `${pin}\n`, { mode: 0o400 });
  registerSecretSource(given);
  const home = join(dir, 'home');
  const kept = join(home, 'secrets', 'hsm-second-pin');
  registerSecretSource(kept);
  const env = { PATH: process.env.PATH, KEYWARD_HOME: home, KEYWARD_SECOND_PIN_FROM: given, ...(process.getuid?.() === 0 ? { KEYWARD_ALLOW_ROOT: '1' } : {}) };
  const entrypoint = join(PROJECT_ROOT, 'scripts', 'entrypoint.sh');
  const run = spawnSync(entrypoint, ['exit-codes'], { env, encoding: 'utf8' });
  expect(run.status).toBe(0);
  expect(run.stderr).toContain("copied the second token's PIN file");
  expect(run.stdout + run.stderr).not.toContain(pin);
  expect(readFileSync(kept, 'utf8')).toBe(`${pin}\n`);
  expect(statSync(kept).mode & 0o777).toBe(0o600);
  const missing = spawnSync(entrypoint, ['exit-codes'], { env: { ...env, KEYWARD_SECOND_PIN_FROM: join(dir, 'nothing') }, encoding: 'utf8' });
  expect(missing.status).toBe(7);
  expect(missing.stderr).toMatch(/KEYWARD_SECOND_PIN_FROM names .*nothing, which uid \d+ cannot read/);
});
