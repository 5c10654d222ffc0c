import { generateKeyPairSync, randomBytes } from 'node:crypto';
import * as argon2 from 'argon2';
import { DatabaseConfig, migrateToLatest } from '../db/database';
import { safeErrorMessage } from '../db/driver-errors';
import { KeywardError } from '../errors/keyward-error';
import { ValidationError } from '../db/validation';
import { isKeyCustodyError, KeyCustodyError } from '../errors/key-custody-error';
import { Pkcs11KeyWrapper } from '../hsm/pkcs11-key-wrapper';
import { Pkcs11Module } from '../hsm/pkcs11-module';
import { mapPkcs11Error } from '../hsm/pkcs11-token';
import { readCapabilities, requireUsableToken } from '../hsm/token-capabilities';
import type { EffectContext, EffectError, EffectInput, EffectName, EffectOutput, EffectRunner, TlsSummary } from '../machines/effect-signatures';
import type { KeyCustody } from './key-custody';
import { checkPasswordStrength } from './password-policy';
import { isBackupArchiveError } from '../backup/archive-errors';
import { keyRotationEffects } from './key-rotation-effects';
import { recoveryShareEffects } from './recovery-share-effects';
import { secondKekEffects } from './second-kek-effects';
import { setUpToken, TokenSetupError } from './token-setup';
import { TlsInputError } from '../tls/errors';
import { parseSubjectAltNames } from '../tls/subject-alt-names';
import type { TlsMaterial } from '../tls/tls-material';

/** Loaded by the effects that use them: a restart that runs neither starts faster without them. */
const lazy = {
  tls: () => require('../tls') as typeof import('../tls'),
  // The certificate's ASN.1 reader comes with it: commands that serve no certificate skip it.
  tlsFiles: () => require('../tls/tls-files') as typeof import('../tls/tls-files'),
  restore: () => require('./restore-service') as typeof import('./restore-service'),
};
const generateTlsCredential: typeof import('../tls').generateTlsCredential = (options) => lazy.tls().generateTlsCredential(options);

export interface EffectsConfig {
  home: string;
  appVersion: string;
  database: DatabaseConfig;
  tlsDir: string;
  secretsDir: string;
  scriptsDir: string;
  softhsmConf: string;
  kekLabel: string;
  defaultSubjectAltNames: string[];
}

type Implementations = { [N in EffectName]: (input: EffectInput<N>, context: EffectContext) => Promise<EffectOutput<N>> };

/** Argon2id for admin passwords: the same floor as the backup password's KDF. */
const ADMIN_HASH = { type: argon2.argon2id, memoryCost: 65536, timeCost: 3, parallelism: 1 } as const;

/**
 * The machine's effects. Each one can run again after a crash and reach the same end: it checks
 * what is already done (a token that exists, a KEK that exists, a DEK already stored, a user already
 * created with the same password) before doing it.
 */
export class LifecycleEffects implements EffectRunner {
  private readonly implementations: Implementations;

  constructor(
    private readonly custody: KeyCustody,
    private readonly config: EffectsConfig,
  ) {
    this.implementations = {
      ...keyRotationEffects(custody, config.secretsDir),
      ...secondKekEffects(custody, config.kekLabel),
      ...recoveryShareEffects(custody),
      migrateDatabase: async ({ appVersion }) => {
        const applied = await migrateToLatest(this.store.db);
        await this.store.appVersion.set(appVersion);
        return { applied };
      },

      issueTlsCredential: async ({ save }) => {
        const material = await generateTlsCredential({ subjectAltNames: parseSubjectAltNames(this.config.defaultSubjectAltNames) });
        if (save) {
          await this.custody.ensureDek();
          await this.store.tls.save({ ...material, source: 'generated' }, { activate: true });
        }
        return this.serve(material, save ? 'new' : 'temporary');
      },

      loadTlsFromDatabase: async () => {
        await this.custody.ensureDek();
        const active = await this.store.tls.active();
        if (active) return this.serve(active, 'database');
        const material = await generateTlsCredential({ subjectAltNames: parseSubjectAltNames(this.config.defaultSubjectAltNames) });
        await this.store.tls.save({ ...material, source: 'generated' }, { activate: true });
        return this.serve(material, 'new');
      },

      deactivateTokenCas: async ({ reason }) => {
        // Nothing else writes CAs during auto-restore (the operations pages are closed): the names listed are the ones deactivated.
        const names = (await this.store.cas.list()).filter((ca) => ca.keyLocation === 'token' && ca.active).map((ca) => ca.name);
        return { deactivated: await this.store.cas.deactivateTokenCas(reason), names };
      },

      checkSecretValues: async () => {
        await this.custody.ensureDek();
        return this.store.secrets.checkAll();
      },

      recordStorageType: async ({ storageType }) => {
        // A DEK this process can unwrap (a wizard entered again) converts what is stored.
        await this.custody.ensureDek().catch(() => undefined);
        await this.store.secrets.changeStorageType(storageType);
        // Software storage has no DEK to create later: its (plaintext) canary is made now.
        if (storageType === 'software') await this.store.canary.reset();
        return { storageType };
      },

      setUpToken: async (input, { secrets, checkpoint }) => {
        const pin = secrets.get('pin');
        const soPin = input.hsmType === 'softhsm' ? secrets.get('soPin') : null;
        // Ask the module first: a token keyward cannot wrap with is refused before anything is made on it.
        const module = Pkcs11Module.open(input.modulePath);
        module.refresh();
        const capabilities = readCapabilities(input.modulePath, input.label);
        if (capabilities !== null) requireUsableToken(capabilities);
        await checkpoint('before-script');
        await setUpToken(
          { ...input, pin, soPin },
          { scriptsDir: this.config.scriptsDir, secretsDir: this.config.secretsDir, userPinFile: this.custody.userPinFile, softhsmConf: this.config.softhsmConf },
        );
        // The script changed the token set from outside this process: re-read it.
        Pkcs11Module.open(input.modulePath).refresh();
        await checkpoint('token-ready');
        await this.store.storage.setToken({
          hsmType: input.hsmType,
          modulePath: input.modulePath,
          tokenLabel: input.label,
          kekLabel: this.config.kekLabel,
          slot: input.slot,
          pinSource: this.custody.userPinSource,
        });
        return { initialized: true };
      },

      createKek: async (_input, { checkpoint }) => {
        const token = await this.custody.requireToken();
        await checkpoint('before-generate');
        const existing = token.findKekId();
        const wrapper = new Pkcs11KeyWrapper(token);
        if (existing) return { kekId: existing.id, reused: true, mechanism: wrapper.mechanism() };
        const kek = token.generateKek();
        // A KEK the token cannot wrap the DEK with is removed, so a failed set-up leaves nothing behind.
        try {
          return { kekId: kek.id, reused: false, mechanism: await wrapper.selfTest() };
        } catch (error) {
          token.destroyKek(kek);
          const failure = isKeyCustodyError(error) ? error : mapPkcs11Error(error, 'testing the new KEK');
          throw new KeyCustodyError(failure.code, `${failure.message}; the KEK made by this set-up was removed from the token`, { cause: error });
        }
      },

      createDek: async (_input, { checkpoint }) => {
        const wrapper = await this.custody.wrapper();
        await checkpoint('before-create');
        const dekKeyId = await this.custody.hierarchy.createDek(wrapper);
        // Replaced, not sealed: the plaintext CSRF key of the wizard's first steps may be in a dump.
        await this.store.webSecrets.replacePlaintext();
        await this.store.secrets.sealPlaintext();
        await this.store.canary.reset();
        return { dekKeyId };
      },

      generateTlsCredential: async ({ subjectAltNames }) => this.keepPending(await generateTlsCredential({ subjectAltNames: parseSubjectAltNames(subjectAltNames) }), 'generated'),

      importTlsPkcs12: async ({ path }, { secrets }) => this.keepPending(await lazy.tls().importPkcs12(path, secrets.get('password')), 'pkcs12'),

      importTlsFiles: async (files) => this.keepPending(await lazy.tls().importPemFiles(files), 'pem'),

      applyTlsCredential: async ({ credentialId }) => {
        await this.custody.ensureDek();
        const credential = await this.store.tls.get(credentialId);
        if (!credential) throw new ValidationError('credentialId', `TLS server credential ${credentialId} does not exist`);
        await this.store.tls.activate(credentialId);
        return this.serve(credential, 'database');
      },

      setBackupPassword: async (_input, { secrets, checkpoint }) => {
        const password = secrets.get('password');
        checkPasswordStrength(password, 'backup password');
        await this.custody.ensureDek();
        await checkpoint('before-copy');
        await this.custody.hierarchy.setBackupPassword(password);
        const kdf = this.custody.config.kdf;
        return { kdf: `argon2id m=${kdf.memoryKiB} t=${kdf.iterations} p=${kdf.parallelism}` };
      },

      addDemoData: async () => {
        await this.custody.ensureDek();
        let devices = 0;
        for (const name of ['demo-device-1', 'demo-device-2']) {
          if (await this.store.devices.findByName(name)) continue;
          await this.store.devices.create({ name, estPassword: randomBytes(18).toString('base64url'), cmpSharedSecret: randomBytes(18).toString('base64url') });
          devices += 1;
        }
        if (!(await this.store.credentials.list()).some((c) => c.name === 'demo-issuing-ca')) {
          const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
          const credentialId = await this.store.credentials.create({ name: 'demo-issuing-ca', privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() });
          await this.store.cas.create({ name: 'demo-issuing-ca', keyLocation: 'db', credentialId });
        }
        return { devices };
      },

      createAdminUser: async ({ username }, { secrets }) => {
        const password = secrets.get('password');
        checkPasswordStrength(password, 'admin password');
        const existing = await this.store.admins.findByUsername(username);
        if (existing) {
          // Run again after a crash: the same user with the same password is already done.
          if (await argon2.verify(existing.passwordHash, password)) return { username };
          throw new ValidationError('username', `an administrator named "${username}" exists already`);
        }
        await this.store.admins.create(username, await argon2.hash(password, ADMIN_HASH));
        return { username };
      },

      recoverDek: async (_input, { secrets, checkpoint }) => {
        const password = secrets.get('password');
        await checkpoint('before-open');
        const dekKeyId = await this.custody.hierarchy.recoverWithPassword(password);
        await checkpoint('dek-recovered');
        const token = await this.custody.requireToken();
        const kek = token.ensureKek();
        await checkpoint('kek-ready');
        await this.custody.hierarchy.rewrap(new Pkcs11KeyWrapper(token));
        await checkpoint('rewrapped');
        return { dekKeyId, kekId: kek.id };
      },

      restoreBackup: async ({ path }, { secrets }) => {
        const report = await lazy
          .restore()
          .restoreArchive(
            { home: this.config.home, tlsDir: this.config.tlsDir, database: this.config.database, appVersion: this.config.appVersion, liveDb: this.store.db },
            path,
            secrets.get('passphrase'),
            { kdfCeiling: this.custody.config.kdfCeiling },
          );
        // The DEK of the replaced store means nothing for the restored one.
        this.custody.keyring.clear();
        return { storeReplaced: true as const, quarantine: report.quarantine };
      },
    };
  }

  private get store() {
    return this.custody.store;
  }

  async run(name: EffectName, input: unknown, context: EffectContext): Promise<unknown> {
    const implementation = this.implementations[name] as (input: unknown, context: EffectContext) => Promise<unknown>;
    if (!implementation) throw new Error(`no effect named ${name}`);
    return implementation(input, context);
  }

  describeError(error: unknown): EffectError {
    if (!(error instanceof KeywardError)) return { code: 'EFFECT_FAILED', message: safeErrorMessage(error) };
    // The code is one of the error table's; the field tells a form which input to mark.
    if (error instanceof TlsInputError || error instanceof ValidationError) return { code: error.code, message: error.message, field: error.field };
    if (isBackupArchiveError(error) || error.name === 'RestoreError') return { code: error.code, message: error.message, field: 'archive' };
    if (error instanceof TokenSetupError && error.field) return { code: error.code, message: error.message, field: error.field };
    return { code: error.code, message: error.message };
  }

  /** Stores an offered credential, inactive until APPLY_TLS. */
  private async keepPending(material: TlsMaterial, source: 'generated' | 'pkcs12' | 'pem'): Promise<{ credentialId: number; fingerprintSha256: string }> {
    await this.custody.ensureDek();
    const credentialId = await this.store.tls.save({ ...material, source }, { activate: false });
    return { credentialId, fingerprintSha256: material.fingerprintSha256 };
  }

  private async serve(material: TlsMaterial, origin: TlsSummary['origin']): Promise<TlsSummary> {
    await lazy.tlsFiles().writeTlsFiles(this.config.tlsDir, material);
    return { fingerprintSha256: material.fingerprintSha256, notAfter: material.notAfter, origin };
  }
}
