import { readTlsFiles } from '../../tls';
import { pendingMigrations } from '../../db/database';
import { migrationSource } from '../../db/migrations';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { Pkcs11Token } from '../../hsm/pkcs11-token';
import { RESTORE_SCENARIOS, VERSION_SCENARIOS } from '../../machines/startup-scenario';
import packageJson from '../../package.json';
import { Install, TOKEN_LABEL, usePhysicalToken } from '../support/install';
import { destroyKek, SoftHsm, SOFTHSM_MODULE } from '../support/softhsm';
import { execFileSync } from 'node:child_process';
import type { KeyMaterialRow, TlsCredentialRow } from '../../db/rows';

/**
 * The start-up scenario matrix (docs/lifecycle.md): each of the 16 StartupScenarios built for real (database,
 * version row, SoftHSM token present or deleted, KEK present or destroyed, wrapped DEK valid or
 * corrupt, backup copy present or not, persisted wizard state), a real BOOT, and then: the state
 * reached, the effects done, and nothing else changed.
 */
jest.setTimeout(120_000);

const installs: Install[] = [];
async function install(name: string): Promise<Install> {
  const created = await Install.create(name);
  installs.push(created);
  return created;
}
afterAll(async () => {
  for (const i of installs) await i.close();
});

type Dump = Record<string, unknown[]>;
function changedTables(before: Dump, after: Dump): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...names].filter((name) => JSON.stringify(before[name] ?? []) !== JSON.stringify(after[name] ?? [])).sort();
}

async function servedFingerprint(i: Install): Promise<string> {
  return (await readTlsFiles(i.config.tlsDir))!.fingerprintSha256;
}

async function activeDbFingerprint(i: Install): Promise<string | null> {
  const row = await i.runtime.store.db<TlsCredentialRow>('tls_server_credentials').where({ active: true }).first('fingerprint_sha256');
  return row?.fingerprint_sha256 ?? null;
}

const scenariosSeen = new Set<string>();
afterAll(() => {
  // Every StartupScenario name was reached by a real BOOT in this file (the lists are the machine's own).
  expect([...scenariosSeen].sort()).toEqual([...VERSION_SCENARIOS, ...RESTORE_SCENARIOS].sort());
});

async function bootAndRecord(i: Install) {
  const result = await i.boot();
  const inspection = await i.runtime.engine.inspect({ historyLimit: 0 });
  // A refused start-up persists nothing: its scenario is in the result only.
  if (result.scenario) scenariosSeen.add(result.scenario);
  if (inspection.context.versionScenario) scenariosSeen.add(inspection.context.versionScenario);
  if (inspection.context.restoreScenario) scenariosSeen.add(inspection.context.restoreScenario);
  return { result, inspection };
}

describe('database and version scenarios', () => {
  it('DB_NOT_INITIALIZED: migrates, records the version, issues and saves a TLS credential, opens the wizard', async () => {
    const i = await install('db-not-initialized');
    const { result, inspection } = await bootAndRecord(i);
    expect(result).toMatchObject({ outcome: 'applied', state: 'wizard.cryptoStorage.waiting', wizardState: 'WIZARD_SETUP_CRYPTO_STORAGE' });
    expect(inspection.scenario).toBe('DB_NOT_INITIALIZED');
    const data = await i.dumpData();
    expect(data.app_version).toEqual([expect.objectContaining({ version: packageJson.version })]);
    expect(data.tls_server_credentials).toHaveLength(1);
    expect(await servedFingerprint(i)).toBe(await activeDbFingerprint(i));
    expect(changedTables({}, data)).toEqual(['app_version', 'tls_server_credentials']);
    const { history } = await i.runtime.engine.inspect({ historyLimit: 10 });
    expect(history.map((h) => h.eventType)).toEqual(['BOOT', 'migrateDatabase:done', 'issueTlsCredential:done']);
    expect(history.map((h) => h.revision)).toEqual([1, 2, 3]);
  });

  it('DB_INITIALIZED_NO_VERSION: a schema without a version row is initialized the same way', async () => {
    const i = await install('db-no-version');
    await i.boot();
    await i.runtime.store.db('app_version').delete();
    await i.restart();
    const { result, inspection } = await bootAndRecord(i);
    expect(inspection.context.versionScenario).toBe('DB_INITIALIZED_NO_VERSION');
    expect(result.state).toBe('wizard.cryptoStorage.waiting');
    expect(await i.runtime.store.appVersion.get()).toBe(packageJson.version);
    expect(await i.runtime.store.db('tls_server_credentials').count({ n: '*' })).toEqual([{ n: 2 }]);
  });

  it('VERSION_DOWNGRADE: a database newer than keyward is refused and nothing at all changes', async () => {
    const i = await install('downgrade');
    await i.boot();
    await i.walkWizard('software');
    await i.runtime.store.appVersion.set('99.0.0');
    await i.restart();
    const before = await i.dumpData();
    const lifecycleBefore = await i.runtime.store.db('lifecycle').select();
    const logBefore = await i.runtime.store.db('transition_log').count({ n: '*' });
    const tlsBefore = await servedFingerprint(i);
    const { result } = await bootAndRecord(i);
    expect(result.outcome).toBe('startup_refused');
    expect(result.scenario).toBe('VERSION_DOWNGRADE');
    expect(result.message).toMatch(/99\.0\.0.*cannot upgrade from.*nothing was changed/);
    expect(await i.dumpData()).toEqual(before);
    expect(await i.runtime.store.db('lifecycle').select()).toEqual(lifecycleBefore);
    expect(await i.runtime.store.db('transition_log').count({ n: '*' })).toEqual(logBefore);
    expect(await servedFingerprint(i)).toBe(tlsBefore);
  });

  it('VERSION_UPGRADE: migrates, records the new version, then restores as usual', async () => {
    const i = await install('upgrade');
    await i.boot();
    await i.walkWizard('software');
    await i.runtime.store.appVersion.set('0.0.1');
    await i.restart();
    const before = await i.dumpData();
    const { result, inspection } = await bootAndRecord(i);
    expect(inspection.context.versionScenario).toBe('VERSION_UPGRADE');
    expect(result.state).toBe('operational');
    expect(await i.runtime.store.appVersion.get()).toBe(packageJson.version);
    expect(changedTables(before, await i.dumpData())).toEqual(['app_version']);
  });

  it('VERSION_UPGRADE also when the version is the same but a migration is pending; the BOOT waits for it', async () => {
    const i = await install('schema-pending');
    await i.boot();
    await i.walkWizard('software');
    await i.runtime.store.db.migrate.down({ migrationSource });
    await i.restart();
    const { result, inspection } = await bootAndRecord(i);
    expect(inspection.context.startup!.schemaPending).toBe(true);
    expect(inspection.context.versionScenario).toBe('VERSION_UPGRADE');
    expect(result.state).toBe('operational');
    expect(await pendingMigrations(i.runtime.store.db)).toEqual([]);
    expect((await i.runtime.audit()).ok).toBe(true);
  });
});

describe('software storage', () => {
  it('VERSION_MATCH + RESTORE_SOFTWARE_WIZARD_COMPLETED: TLS from the database, operational', async () => {
    const i = await install('software-completed');
    await i.boot();
    await i.walkWizard('software');
    await i.restart();
    const before = await i.dumpData();
    const { result, inspection } = await bootAndRecord(i);
    expect(inspection.context.versionScenario).toBe('VERSION_MATCH');
    expect(inspection.scenario).toBe('RESTORE_SOFTWARE_WIZARD_COMPLETED');
    expect(result.state).toBe('operational');
    expect(await servedFingerprint(i)).toBe(await activeDbFingerprint(i));
    expect(changedTables(before, await i.dumpData())).toEqual([]);
  });

  it('RESTORE_SOFTWARE_WIZARD_INCOMPLETE: TLS from the database, back to the first wizard step', async () => {
    const i = await install('software-incomplete');
    await i.boot();
    await i.walkWizard('software', 'tlsCredential');
    await i.restart();
    const before = await i.dumpData();
    const { result, inspection } = await bootAndRecord(i);
    expect(inspection.scenario).toBe('RESTORE_SOFTWARE_WIZARD_INCOMPLETE');
    expect(result.wizardState).toBe('WIZARD_SETUP_CRYPTO_STORAGE');
    expect(await servedFingerprint(i)).toBe(await activeDbFingerprint(i));
    expect(changedTables(before, await i.dumpData())).toEqual([]);
  });
});

describe('SoftHSM storage', () => {
  async function completedSoftHsm(name: string): Promise<Install> {
    const i = await install(name);
    await i.boot();
    await i.walkWizard('softhsm');
    await i.runtime.store.cas.create({ name: 'token-ca', keyLocation: 'token', tokenKeyLabel: 'ca-key' });
    await i.runtime.store.devices.create({ name: 'device', estPassword: 'est-secret-for-matrix' });
    return i;
  }

  it('RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED: the DEK unwraps into memory, TLS from the database, operational', async () => {
    const i = await completedSoftHsm('softhsm-cached');
    await i.restart();
    expect(i.runtime.keyring.current).toBeNull();
    const before = await i.dumpData();
    const { result, inspection } = await bootAndRecord(i);
    expect(inspection.scenario).toBe('RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED');
    expect(result.state).toBe('operational');
    expect(i.runtime.keyring.current).not.toBeNull();
    expect(inspection.context.startup).toMatchObject({ tokenPresent: true, kekPresent: true, dekAvailable: true, backupCopyPresent: true });
    expect(await servedFingerprint(i)).toBe(await activeDbFingerprint(i));
    expect(changedTables(before, await i.dumpData())).toEqual([]);
    expect((await i.runtime.store.devices.findByName('device'))!.estPassword).toBe('est-secret-for-matrix');
  });

  it('RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED, token gone: temporary TLS (not saved), HSM set-up; token CAs deactivated only once a new token is set up', async () => {
    const i = await completedSoftHsm('softhsm-token-gone');
    await i.restart();
    execFileSync('rm', ['-rf', i.tokenDir]);
    execFileSync('mkdir', ['-p', i.tokenDir]);
    const before = await i.dumpData();
    const { result, inspection } = await bootAndRecord(i);
    expect(inspection.scenario).toBe('RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED');
    expect(result.wizardState).toBe('WIZARD_SETUP_HSM_AUTORESTORE');
    expect(inspection.context.startup).toMatchObject({ tokenPresent: false, kekPresent: false, dekAvailable: false, backupCopyPresent: true });
    // BOOT alone deactivates nothing: a token that was not seen is not yet a token the operator gave up.
    expect(changedTables(before, await i.dumpData())).toEqual([]);
    expect((await i.runtime.store.cas.list())[0]).toMatchObject({ active: true, deactivationReason: null });
    expect(await servedFingerprint(i)).not.toBe(await activeDbFingerprint(i));
    expect(inspection.context.tls?.origin).toBe('temporary');
    // The operator sets a new token up: that confirms the loss, and the old token's CAs go.
    expect((await i.send('SETUP_HSM', i.hsmSetupPayload(), i.hsmSecrets())).wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    expect((await i.runtime.store.cas.list())[0]).toMatchObject({ active: false, deactivationReason: 'their keys were in the HSM token, which was lost' });
  });

  it('a token that is missing from one probe but back for the re-probe keeps an operational install operational', async () => {
    const i = await completedSoftHsm('softhsm-token-blip');
    await i.restart();
    const away = `${i.tokenDir}.away`;
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with .call(this, …)
    const realProbe = Pkcs11Token.prototype.probe;
    let probes = 0;
    // The token is away for the whole of the first probe (its absence confirmed), back after it.
    const spy = jest.spyOn(Pkcs11Token.prototype, 'probe').mockImplementation(async function (this: Pkcs11Token, window) {
      probes += 1;
      if (probes > 1) return realProbe.call(this, window);
      execFileSync('mv', [i.tokenDir, away]);
      execFileSync('mkdir', ['-p', i.tokenDir]);
      try {
        return await realProbe.call(this, window);
      } finally {
        execFileSync('rm', ['-rf', i.tokenDir]);
        execFileSync('mv', [away, i.tokenDir]);
      }
    });
    try {
      const before = await i.dumpData();
      const tls = await servedFingerprint(i);
      const { result, inspection } = await bootAndRecord(i);
      expect(probes).toBe(2);
      expect(result.state).toBe('operational');
      expect(inspection.scenario).toBe('RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED');
      expect(changedTables(before, await i.dumpData())).toEqual([]);
      expect(await servedFingerprint(i)).toBe(tls);
    } finally {
      spy.mockRestore();
    }
  });

  it('RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED, KEK destroyed, token kept: straight to the backup password, CAs untouched', async () => {
    const i = await completedSoftHsm('softhsm-kek-gone');
    await i.restart();
    destroyKek(i.config.softhsmConf, i.pin);
    const before = await i.dumpData();
    const { result, inspection } = await bootAndRecord(i);
    expect(inspection.scenario).toBe('RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED');
    expect(result.wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    expect(inspection.context.startup).toMatchObject({ tokenPresent: true, kekPresent: false, dekAvailable: false });
    expect(changedTables(before, await i.dumpData())).toEqual([]);
    expect(await servedFingerprint(i)).not.toBe(await activeDbFingerprint(i));
  });

  it('RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_NOT_CACHED: a corrupt wrapped DEK with the KEK present asks for the backup password', async () => {
    const i = await completedSoftHsm('softhsm-not-cached');
    await i.restart();
    const blob = (await i.runtime.store.db<KeyMaterialRow>('key_material').first('wrapped_dek'))!.wrapped_dek!;
    blob[10]! ^= 0xff;
    await i.runtime.store.db('key_material').update({ wrapped_dek: blob });
    const before = await i.dumpData();
    const { result, inspection } = await bootAndRecord(i);
    expect(inspection.scenario).toBe('RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_NOT_CACHED');
    expect(result.wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    expect(inspection.context.startup).toMatchObject({ tokenPresent: true, kekPresent: true, dekAvailable: false });
    expect(changedTables(before, await i.dumpData())).toEqual([]);

    // The password recovers the DEK and re-wraps it under the KEK that is there.
    expect((await i.send('SUBMIT_BACKUP_PASSWORD', {}, { password: i.backupPassword })).state).toBe('operational');
    expect(changedTables(before, await i.dumpData())).toEqual(['key_material']);
    await i.restart();
    expect((await i.boot()).state).toBe('operational');
  });

  it('…DEK_NOT_CACHED without a backup copy: unrecoverable, said plainly, nothing changed', async () => {
    const i = await completedSoftHsm('softhsm-unrecoverable');
    await i.restart();
    await i.runtime.store.db('key_material').update({ backup_copy: null });
    destroyKek(i.config.softhsmConf, i.pin);
    const before = await i.dumpData();
    const tlsBefore = await servedFingerprint(i);
    const { result, inspection } = await bootAndRecord(i);
    expect(inspection.scenario).toBe('RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_NOT_CACHED');
    expect(result.state).toBe('unrecoverable');
    expect(inspection.context.reason).toMatch(/no backup copy.*nothing was changed/);
    expect(changedTables(before, await i.dumpData())).toEqual([]);
    expect(await servedFingerprint(i)).toBe(tlsBefore);
  });

  it('RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_CACHED: a new TLS credential, saved; back to the first step', async () => {
    const i = await install('softhsm-incomplete-cached');
    await i.boot();
    await i.walkWizard('softhsm', 'tlsCredential');
    await i.restart();
    const before = await i.dumpData();
    const { result, inspection } = await bootAndRecord(i);
    expect(inspection.scenario).toBe('RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_CACHED');
    expect(result.wizardState).toBe('WIZARD_SETUP_CRYPTO_STORAGE');
    expect(changedTables(before, await i.dumpData())).toEqual(['key_material', 'tls_server_credentials']);
    expect((await i.dumpData()).tls_server_credentials).toHaveLength(before.tls_server_credentials!.length + 1);
    expect(await servedFingerprint(i)).toBe(await activeDbFingerprint(i));
  });

  it('RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED: a temporary TLS credential; back to the first step', async () => {
    const i = await install('softhsm-incomplete-not-cached');
    await i.boot();
    await i.expectSend('SELECT_STORAGE', { storageType: 'softhsm' });
    await i.restart();
    const before = await i.dumpData();
    const { result, inspection } = await bootAndRecord(i);
    expect(inspection.scenario).toBe('RESTORE_SOFTHSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED');
    expect(result.wizardState).toBe('WIZARD_SETUP_CRYPTO_STORAGE');
    expect(changedTables(before, await i.dumpData())).toEqual([]);
    expect(await servedFingerprint(i)).not.toBe(await activeDbFingerprint(i));
  });
});

describe('physical HSM storage (SoftHSM2 configured as a persistent module)', () => {
  /** A physical HSM's token is created with the vendor's tools, never by keyward. */
  async function physical(name: string, stopBefore?: 'tlsCredential'): Promise<{ i: Install; hsm: SoftHsm }> {
    const i = await install(name);
    const hsm = await usePhysicalToken(i, name);
    await i.walkWizard('physical_hsm', stopBefore);
    return { i, hsm };
  }

  it('RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_CACHED: operational, as with SoftHSM', async () => {
    const { i } = await physical('physical-cached');
    await i.restart();
    const before = await i.dumpData();
    const { result, inspection } = await bootAndRecord(i);
    expect(inspection.scenario).toBe('RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_CACHED');
    expect(result.state).toBe('operational');
    expect(changedTables(before, await i.dumpData())).toEqual([]);
  });

  it('RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED: an unreachable token is an outage, never a reset; a KEK gone asks for the password', async () => {
    const { i, hsm } = await physical('physical-not-cached');
    await i.runtime.store.cas.create({ name: 'hsm-ca', keyLocation: 'token', tokenKeyLabel: 'ca-key' });
    await i.restart();
    // The token goes out of reach (a network HSM down): wait and retry, nothing deactivated.
    const saved = `${hsm.tokenDir}.away`;
    execFileSync('mv', [hsm.tokenDir, saved]);
    execFileSync('mkdir', ['-p', hsm.tokenDir]);
    const before = await i.dumpData();
    const outage = await bootAndRecord(i);
    expect(outage.inspection.scenario).toBe('RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED');
    expect(outage.result.state).toBe('outage.waiting');
    expect(changedTables(before, await i.dumpData())).toEqual([]);
    // It comes back: the next retry boots straight to operational.
    execFileSync('rm', ['-rf', hsm.tokenDir]);
    execFileSync('mv', [saved, hsm.tokenDir]);
    await i.restart();
    expect((await i.boot()).state).toBe('operational');
    // The KEK is destroyed on a reachable token: recover with the password.
    destroyKek(hsm.conf, i.pin);
    await i.restart();
    const lost = await bootAndRecord(i);
    expect(lost.inspection.scenario).toBe('RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED');
    expect(lost.result.wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    expect((await i.send('SUBMIT_BACKUP_PASSWORD', {}, { password: i.backupPassword })).state).toBe('operational');
    expect((await i.runtime.store.cas.list())[0]!.active).toBe(true);
  });

  it('an operator may declare an unreachable physical token lost: HSM set-up, and the CAs are deactivated once the new token is set up', async () => {
    const { i, hsm } = await physical('physical-declared-lost');
    await i.runtime.store.cas.create({ name: 'hsm-ca', keyLocation: 'token', tokenKeyLabel: 'ca-key' });
    await i.restart();
    hsm.deleteAllTokens();
    expect((await i.boot()).state).toBe('outage.waiting');
    expect((await i.send('DECLARE_TOKEN_LOST')).wizardState).toBe('WIZARD_SETUP_HSM_AUTORESTORE');
    expect((await i.runtime.store.cas.list())[0]).toMatchObject({ active: true });
    // The vendor's tools make the replacement token; setting it up confirms the loss.
    const replacement = hsm.initToken(TOKEN_LABEL);
    Object.assign(i, { pin: replacement.pin });
    Pkcs11Module.open(SOFTHSM_MODULE).refresh();
    expect((await i.send('SETUP_HSM', i.hsmSetupPayload('physical'), i.hsmSecrets('physical'))).wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    expect((await i.runtime.store.cas.list())[0]).toMatchObject({ active: false, deactivationReason: 'their keys were in the HSM token, which an operator declared lost' });
    expect((await i.send('SUBMIT_BACKUP_PASSWORD', {}, { password: i.backupPassword })).state).toBe('operational');
  });

  it('RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_CACHED and _DEK_NOT_CACHED: back to the first step', async () => {
    const { i, hsm } = await physical('physical-incomplete', 'tlsCredential');
    await i.restart();
    const cached = await bootAndRecord(i);
    expect(cached.inspection.scenario).toBe('RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_CACHED');
    expect(cached.result.wizardState).toBe('WIZARD_SETUP_CRYPTO_STORAGE');
    hsm.deleteAllTokens();
    await i.restart();
    const before = await i.dumpData();
    const notCached = await bootAndRecord(i);
    expect(notCached.inspection.scenario).toBe('RESTORE_PHYSICAL_HSM_WIZARD_INCOMPLETE_DEK_NOT_CACHED');
    expect(notCached.result.wizardState).toBe('WIZARD_SETUP_CRYPTO_STORAGE');
    expect(changedTables(before, await i.dumpData())).toEqual([]);
  });
});
