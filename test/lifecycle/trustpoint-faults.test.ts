import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeScriptExit, loadScriptExitCodes } from '../../effects/script-exit-codes';
import { setUpToken, TokenSetupError } from '../../effects/token-setup';
import { readTlsFiles } from '../../tls';
import { PROJECT_ROOT } from '../../server/config';
import { Install, TOKEN_LABEL } from '../support/install';
import { testDir } from '../support/run-dir';
import { newSecret, registerSecretSource } from '../support/secrets';
import { destroyKek, SoftHsm, SOFTHSM_MODULE } from '../support/softhsm';
import type { DeviceRow, KeyMaterialRow, LifecycleRow } from '../../db/rows';

/** Trustpoint's known faults: each test fails on Trustpoint's behaviour. */
jest.setTimeout(120_000);

const installs: Install[] = [];
async function completed(name: string, storage: 'softhsm' | 'software' = 'softhsm'): Promise<Install> {
  const i = await Install.create(name);
  installs.push(i);
  await i.boot();
  await i.walkWizard(storage);
  return i;
}
afterAll(async () => {
  for (const i of installs) await i.close();
});

describe("Trustpoint's faults, absent from keyward", () => {
  it('1. a completed SoftHSM install whose KEK is gone goes to auto-restore from any persisted state', async () => {
    const i = await completed('fault1');
    destroyKek(i.config.softhsmConf, i.pin);
    // From operational, from the middle of auto-restore, from a failed state: always auto-restore.
    for (const persisted of ['operational', 'autoRestore.password.waiting', 'failed']) {
      const row = await i.runtime.store.db<LifecycleRow>('lifecycle').first();
      const snapshot = JSON.parse(row!.snapshot) as { value: unknown };
      snapshot.value = persisted.includes('.') ? { autoRestore: { password: 'waiting' } } : persisted;
      await i.runtime.store.db('lifecycle').update({ snapshot: JSON.stringify(snapshot), state: persisted });
      await i.restart();
      const result = await i.boot();
      expect({ from: persisted, to: result.wizardState }).toEqual({ from: persisted, to: 'WIZARD_AUTO_RESTORE_PASSWORD' });
    }
    expect((await i.send('SUBMIT_BACKUP_PASSWORD', {}, { password: i.backupPassword })).state).toBe('operational');
  });

  it('2. a fresh container over a working HSM and database comes straight back, keeping the active TLS credential', async () => {
    const i = await completed('fault2');
    const dbBefore = await i.dumpData();
    const fingerprint = (await readTlsFiles(i.config.tlsDir))!.fingerprintSha256;
    rmSync(i.config.tlsDir, { recursive: true, force: true }); // a new container: no TLS files, no memory
    await i.restart();
    const result = await i.boot();
    expect(result).toMatchObject({ state: 'operational', wizardState: 'WIZARD_COMPLETED' });
    expect((await readTlsFiles(i.config.tlsDir))!.fingerprintSha256).toBe(fingerprint);
    expect(await i.dumpData()).toEqual(dbBefore);
  });

  it('3. cancelling the TLS apply goes back to the credential step, a state that exists', async () => {
    const i = await Install.create('fault3');
    installs.push(i);
    await i.boot();
    await i.walkWizard('software', 'tlsCredential');
    await i.expectSend('GENERATE_TLS', { subjectAltNames: ['localhost'] });
    const cancel = await i.expectSend('CANCEL_TLS');
    expect(cancel).toMatchObject({ state: 'wizard.tlsCredential.waiting', wizardState: 'WIZARD_SELECT_TLS_SERVER_CREDENTIAL' });
    await i.restart();
    expect((await i.runtime.engine.inspect()).accepts).toEqual(expect.arrayContaining(['GENERATE_TLS', 'IMPORT_TLS_PKCS12', 'IMPORT_TLS_FILES']));
    await i.expectSend('GENERATE_TLS', { subjectAltNames: ['localhost'] });
    expect((await i.expectSend('APPLY_TLS')).wizardState).toBe('WIZARD_DEMO_DATA');
  });

  it('4. choosing a physical HSM leads through HSM set-up to a working install', async () => {
    const i = await Install.create('fault4');
    installs.push(i);
    const hsm = new SoftHsm('fault4');
    i.config.softhsmConf = hsm.conf;
    const token = hsm.initToken(TOKEN_LABEL);
    Object.assign(i, { pin: token.pin });
    await i.restart();
    await i.boot();
    expect((await i.expectSend('SELECT_STORAGE', { storageType: 'physical_hsm' })).wizardState).toBe('WIZARD_SETUP_HSM');
    // The SoftHSM kind is refused for physical storage; the physical kind never initializes a token.
    expect((await i.send('SETUP_HSM', i.hsmSetupPayload('softhsm'), i.hsmSecrets('softhsm'))).outcome).toBe('refused');
    await i.expectSend('SETUP_HSM', i.hsmSetupPayload('physical'), i.hsmSecrets('physical'));
    await i.expectSend('CHOOSE_FRESH');
    await i.expectSend('GENERATE_TLS', { subjectAltNames: ['localhost'] });
    expect((await i.expectSend('APPLY_TLS')).wizardState).toBe('WIZARD_BACKUP_PASSWORD');
    await i.expectSend('SET_BACKUP_PASSWORD', {}, { password: i.backupPassword });
    await i.expectSend('SKIP_DEMO_DATA');
    await i.expectSend('CREATE_ADMIN', { username: 'admin' }, { password: i.adminPassword });
    await i.restart();
    expect((await i.boot()).state).toBe('operational');
    await i.runtime.store.devices.create({ name: 'on-physical', estPassword: 'physical-est-secret' });
    expect((await i.runtime.store.db<DeviceRow>('devices').first())!.est_password![0]).toBe(1);
  });

  it('5. "DEK available" is what the serving process just proved by unwrapping, not a cache that is always empty', async () => {
    const i = await completed('fault5');
    await i.restart();
    expect(i.runtime.keyring.current).toBeNull(); // a new process: nothing cached
    const boot = await i.boot();
    expect(boot.state).toBe('operational');
    expect((await i.runtime.engine.inspect()).context.startup!.dekAvailable).toBe(true);
    // The same process serves with the DEK it unwrapped: no second unwrap needed.
    expect(i.runtime.keyring.current).not.toBeNull();
    await i.runtime.store.devices.create({ name: 'd5', estPassword: 'fault5-est-secret' });
    // A stale DEK in memory does not make a corrupt wrapped DEK "available".
    const blob = (await i.runtime.store.db<KeyMaterialRow>('key_material').first('wrapped_dek'))!.wrapped_dek!;
    blob[3]! ^= 1;
    await i.runtime.store.db('key_material').update({ wrapped_dek: blob });
    const again = await i.boot();
    expect((await i.runtime.engine.inspect()).context.startup!.dekAvailable).toBe(false);
    expect(again.wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
  });

  it('6. script exit codes and the messages shown for them come from one table, and agree', async () => {
    const scriptsDir = join(PROJECT_ROOT, 'scripts');
    const table = loadScriptExitCodes(scriptsDir);
    const script = readFileSync(join(scriptsDir, 'wizard_setup_hsm.sh'), 'utf8');
    const code = script
      .split('\n')
      .filter((line) => !line.trimStart().startsWith('#'))
      .join('\n');
    const used = [...code.matchAll(/\bfail ([A-Z_]+)/g)].map((m) => m[1]!);
    expect(used.length).toBeGreaterThan(5);
    for (const name of used) expect(table.map((e) => e.name)).toContain(name);
    expect(new Set(table.map((e) => e.code)).size).toBe(table.length);

    const hsm = new SoftHsm('fault6');
    const dir = testDir('fault6');
    const secretsDir = join(dir, 'secrets');
    mkdirSync(secretsDir);
    const paths = { scriptsDir, secretsDir, userPinFile: join(secretsDir, 'hsm-user-pin'), softhsmConf: hsm.conf };
    registerSecretSource(paths.userPinFile);
    const pin = newSecret('pin');
    const base = { hsmType: 'softhsm' as const, modulePath: SOFTHSM_MODULE, label: 'Fault6', slot: null, purpose: 'wizard' as const, pin, soPin: newSecret('sopin') };
    const expectFailure = async (request: typeof base, name: string) => {
      const error = await setUpToken(request, paths).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TokenSetupError);
      expect((error as TokenSetupError).code).toBe(name);
      expect((error as TokenSetupError).message).toContain(table.find((e) => e.name === name)!.message);
    };
    await expectFailure({ ...base, modulePath: '/nonexistent/module.so' }, 'MODULE_MISSING');
    await expectFailure({ ...base, hsmType: 'physical' as never, soPin: null as never }, 'TOKEN_NOT_FOUND');
    await expectFailure({ ...base, soPin: 'x' }, 'PIN_TOO_SHORT');
    await setUpToken(base, paths);
    await expectFailure({ ...base, pin: newSecret('wrong-pin') }, 'WRONG_PIN');
    // The raw script, through the same table: its exit code and the message keyward shows agree.
    const run = spawnSync('bash', [join(scriptsDir, 'wizard_setup_hsm.sh'), 'bogus', SOFTHSM_MODULE, 'L', '-', 'wizard'], { encoding: 'utf8' });
    expect(describeScriptExit(scriptsDir, run.status)).toMatchObject({ name: 'USAGE' });
    const noPinFile = spawnSync('bash', [join(scriptsDir, 'wizard_setup_hsm.sh'), 'softhsm', SOFTHSM_MODULE, 'L', '-', 'wizard'], {
      encoding: 'utf8',
      env: { ...process.env, KW_PIN_FILE: join(dir, 'missing') },
    });
    expect(describeScriptExit(scriptsDir, noPinFile.status)).toMatchObject({ name: 'PIN_FILE_UNREADABLE' });
    expect(readFileSync(paths.userPinFile, 'utf8').trim()).toBe(pin);
    writeFileSync(join(dir, 'done'), '');
  });

  it('7. backup-password guesses are limited: a growing lockout, kept across restarts', async () => {
    const i = await completed('fault7');
    destroyKek(i.config.softhsmConf, i.pin);
    await i.restart();
    expect((await i.boot()).wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    for (let attempt = 1; attempt <= 3; attempt++) {
      const result = await i.send('SUBMIT_BACKUP_PASSWORD', {}, { password: newSecret('guess') });
      expect(result).toMatchObject({ outcome: 'rejected', error: { code: 'WRONG_BACKUP_PASSWORD' } });
    }
    const locked = (await i.runtime.engine.inspect()).context;
    expect(locked.passwordFailures).toBe(3);
    expect(Date.parse(locked.lockedUntil!) - Date.now()).toBeGreaterThan(20_000);
    // While locked, even the right password is not tried.
    expect(await i.send('SUBMIT_BACKUP_PASSWORD', {}, { password: i.backupPassword })).toMatchObject({ outcome: 'rejected', error: { code: 'LOCKED_OUT' } });
    await i.restart();
    expect((await i.boot()).wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    expect(await i.send('SUBMIT_BACKUP_PASSWORD', {}, { password: i.backupPassword })).toMatchObject({ outcome: 'rejected', error: { code: 'LOCKED_OUT' } });
    expect((await i.runtime.engine.inspect()).context.passwordFailures).toBe(3);
    // Time passes (the lock is moved into the past), the next wrong guess locks for twice as long.
    const row = await i.runtime.store.db<LifecycleRow>('lifecycle').first();
    const snapshot = JSON.parse(row!.snapshot) as { context: Record<string, unknown> };
    snapshot.context.lockedUntil = new Date(Date.now() - 1000).toISOString();
    await i.runtime.store.db('lifecycle').update({ snapshot: JSON.stringify(snapshot) });
    // Written behind the engine's back under the same revision: it starts from its own last commit until it reads again.
    await i.runtime.engine.load();
    await i.send('SUBMIT_BACKUP_PASSWORD', {}, { password: newSecret('guess') });
    const longer = (await i.runtime.engine.inspect()).context;
    expect(Date.parse(longer.lockedUntil!) - Date.now()).toBeGreaterThan(50_000);
    snapshot.context = { ...longer, lockedUntil: new Date(Date.now() - 1000).toISOString() };
    await i.runtime.store.db('lifecycle').update({ snapshot: JSON.stringify(snapshot) });
    await i.runtime.engine.load();
    expect((await i.send('SUBMIT_BACKUP_PASSWORD', {}, { password: i.backupPassword })).state).toBe('operational');
    expect((await i.runtime.engine.inspect()).context).toMatchObject({ passwordFailures: 0, lockedUntil: null });
  });
});
