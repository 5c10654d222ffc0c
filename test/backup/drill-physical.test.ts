import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DrillReport } from '../../effects/restore-drill';
import { CliHome } from '../support/cli';
import { Install, usePhysicalToken } from '../support/install';
import { testDir } from '../support/run-dir';
import { newSecret } from '../support/secrets';

/**
 * A drill of a physical-HSM archive: keyward cannot make a physical token, so the drill makes a
 * SoftHSM token stand in for it, as the vendor's tool would — in its own process, with no PIN in any
 * child's arguments or environment (every pkcs11-tool the drill starts is recorded).
 */
jest.setTimeout(300_000);

it('drills a physical-HSM archive on a stand-in token, with no PIN in any child process', async () => {
  const i = await Install.create('drill-physical');
  await usePhysicalToken(i, 'drill-physical');
  await i.walkWizard('physical_hsm');
  await i.runtime.store.devices.create({ name: 'd1', estPassword: newSecret('est') });
  const passphrase = `Pp-${newSecret('passphrase')}`;
  const archive = join(testDir('drill-physical-archive'), 'a.kwbak');
  await i.runtime.backup(archive, passphrase);
  await i.close();

  // The drill runs as `keyward drill` does; every pkcs11-tool it starts records its environment and arguments.
  const shims = testDir('drill-physical-shims');
  const record = join(shims, 'children.txt');
  mkdirSync(join(shims, 'bin'));
  const shim = join(shims, 'bin', 'pkcs11-tool');
  writeFileSync(shim, `#!/bin/sh\n{ tr '\\0' '\\n' </proc/$$/environ; echo "ARGS $*"; } >>'${record}'\nexec /usr/bin/pkcs11-tool "$@"\n`);
  chmodSync(shim, 0o755);
  const cli = new CliHome('drill-physical-cli', { PATH: `${join(shims, 'bin')}:${process.env.PATH}` });
  const run = cli.run(['drill', '--input', archive, '--json', '--passphrase-file', cli.secretFile(passphrase), '--backup-password-file', cli.secretFile(i.backupPassword)]);
  const report = JSON.parse(run.stdout) as DrillReport;
  expect(report.steps.filter((s) => !s.ok)).toEqual([]);
  expect({ status: run.status, ok: report.ok }).toEqual({ status: 0, ok: true });
  expect(report.steps.find((s) => s.step.startsWith('auto-restore'))?.detail).toMatch(/fresh token set up/);
  expect(existsSync(report.scratchHome)).toBe(false);
  // The drill's PINs are random hex of 32 digits: no child carries one, in a variable or an argument.
  const children = existsSync(record) ? readFileSync(record, 'utf8') : '';
  expect(children).toContain('ARGS ');
  expect(children).not.toMatch(/=[0-9a-f]{32}$|KW_DRILL|--(so-)?pin\b/m);
  expect(children).not.toContain(i.backupPassword);
});
