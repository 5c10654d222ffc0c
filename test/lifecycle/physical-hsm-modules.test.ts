import { execFileSync } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { Pkcs11Token } from '../../hsm/pkcs11-token';
import { Install, TOKEN_LABEL } from '../support/install';
import {
  initOckToken,
  OCK_MODULE,
  OCK_TOKEN_LABEL,
  ockTool,
  daemonStartedByTests,
  releaseOpenCryptoki,
  reportOckUnavailable,
  restartDaemon,
  stopDaemon,
  useOpenCryptoki,
} from '../support/opencryptoki';
import { SoftHsm, SOFTHSM_MODULE } from '../support/softhsm';
import { newSecret, registerSecretSource } from '../support/secrets';

/**
 * "Any PKCS#11 module": the physical-HSM path run end to end on two independent implementations,
 * SoftHSM2 (RFC 3394 key wrap) and openCryptoki's software token (no key wrap mechanism at all:
 * CBC-PAD with check values). Wizard, restart to operational, KEK loss and recovery with the backup
 * password, module outage and recovery; every secret byte-equal at the end.
 */
jest.setTimeout(180_000);

const installs: Install[] = [];
afterAll(async () => {
  for (const i of installs) await i.close();
});

interface Module {
  name: string;
  module: string;
  label: string;
  mechanism: string;
  /** Makes the token as the vendor's tools would; returns the user PIN. */
  prepare(i: Install, name: string): Promise<string>;
  listObjects(i: Install): string;
  destroyKek(i: Install): void;
  /** Takes the module out of reach and returns the function that brings it back, or a reason it cannot. */
  outage(i: Install): (() => void) | string;
}

const softHsm: Module = {
  name: 'SoftHSM2',
  module: SOFTHSM_MODULE,
  label: TOKEN_LABEL,
  mechanism: 'CKM_AES_KEY_WRAP',
  async prepare(i, name) {
    const hsm = new SoftHsm(name);
    i.config.softhsmConf = hsm.conf;
    await i.restart();
    const token = hsm.initToken(TOKEN_LABEL, i.config.kekLabel);
    Pkcs11Module.open(SOFTHSM_MODULE).refresh();
    return token.pin;
  },
  listObjects: (i) =>
    execFileSync('pkcs11-tool', ['--module', SOFTHSM_MODULE, '--token-label', TOKEN_LABEL, '--login', '--pin', 'env:KW_TEST_PIN', '--list-objects'], {
      env: { ...process.env, SOFTHSM2_CONF: i.config.softhsmConf, KW_TEST_PIN: i.pin },
      encoding: 'utf8',
    }),
  destroyKek(i) {
    execFileSync(
      'pkcs11-tool',
      ['--module', SOFTHSM_MODULE, '--token-label', TOKEN_LABEL, '--login', '--pin', 'env:KW_TEST_PIN', '--delete-object', '--type', 'secrkey', '--label', i.config.kekLabel],
      {
        env: { ...process.env, SOFTHSM2_CONF: i.config.softhsmConf, KW_TEST_PIN: i.pin },
        stdio: 'ignore',
      },
    );
  },
  outage(i) {
    const tokens = i.config.softhsmConf.replace(/softhsm2\.conf$/, 'tokens');
    execFileSync('mv', [tokens, `${tokens}.away`]);
    execFileSync('mkdir', ['-p', tokens]);
    return () => {
      execFileSync('rm', ['-rf', tokens]);
      execFileSync('mv', [`${tokens}.away`, tokens]);
    };
  },
};

const openCryptoki: Module = {
  name: 'openCryptoki',
  module: OCK_MODULE,
  label: OCK_TOKEN_LABEL,
  mechanism: 'CKM_AES_CBC_PAD',
  async prepare(i) {
    const token = initOckToken(i.config.kekLabel);
    Pkcs11Module.open(OCK_MODULE).refresh();
    return token.pin;
  },
  listObjects: (i) => ockTool(['--token-label', OCK_TOKEN_LABEL, '--login', '--pin', 'env:KW_TEST_PIN', '--list-objects'], i.pin),
  destroyKek(i) {
    ockTool(['--token-label', OCK_TOKEN_LABEL, '--login', '--pin', 'env:KW_TEST_PIN', '--delete-object', '--type', 'secrkey', '--label', i.config.kekLabel], i.pin);
  },
  outage() {
    if (!daemonStartedByTests()) return 'pkcsslotd was already running on this host, so the tests do not stop it';
    stopDaemon();
    return restartDaemon;
  },
};

const ock = useOpenCryptoki();
afterAll(releaseOpenCryptoki);
const modules = ock.available ? [softHsm, openCryptoki] : [softHsm];
if (!ock.available) {
  it('openCryptoki cannot run here, and says so', () => reportOckUnavailable(ock.reason));
}

/** A physical-HSM install on `module`, its token made beforehand, the wizard not yet walked. */
async function physical(module: Module, name: string): Promise<Install> {
  const i = await Install.create(name);
  installs.push(i);
  i.hsmModule = module.module;
  i.hsmLabel = module.label;
  Object.assign(i.config, { pkcs11Module: module.module, tokenLabel: module.label, kekLabel: `kek-${name}`.slice(0, 32) });
  const pin = await module.prepare(i, name);
  Object.assign(i, { pin });
  await i.restart();
  await i.boot();
  return i;
}

async function secretsOf(i: Install) {
  const device = await i.runtime.store.devices.findByName('device-1');
  const tls = await i.runtime.store.tls.active();
  return { est: device?.estPassword, cmp: device?.cmpSharedSecret, tlsKey: tls?.privateKeyPem };
}

describe.each(modules)('physical HSM on $name', (module) => {
  it('wizard, restart to operational, KEK loss recovered with the backup password, outage waited out: every secret byte-equal', async () => {
    const i = await physical(module, `phys-${module.name}`);
    await i.walkWizard('physical_hsm');
    expect(await i.state()).toBe('operational');
    const record = await i.runtime.store.keyMaterial.current();
    expect(record?.wrapped?.mechanism).toBe(module.mechanism);

    const est = newSecret('est');
    const cmp = newSecret('cmp');
    await i.runtime.store.devices.create({ name: 'device-1', estPassword: est, cmpSharedSecret: cmp });
    const before = await secretsOf(i);
    expect(before).toMatchObject({ est, cmp });
    expect(before.tlsKey).toMatch(/PRIVATE KEY/);

    await i.restart();
    const restarted = await i.boot();
    expect(restarted.state).toBe('operational');
    expect(await secretsOf(i)).toEqual(before);

    // The KEK is destroyed on the token (pkcs11-tool, as an operator would): auto-restore with the password.
    const firstKek = record!.wrapped!.kek.id;
    module.destroyKek(i);
    expect(module.listObjects(i)).not.toContain(i.config.kekLabel);
    await i.restart();
    expect((await i.boot()).wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    expect((await i.send('SUBMIT_BACKUP_PASSWORD', {}, { password: i.backupPassword })).state).toBe('operational');
    const rewrapped = await i.runtime.store.keyMaterial.current();
    expect(rewrapped?.wrapped).toMatchObject({ mechanism: module.mechanism });
    expect(rewrapped!.wrapped!.kek.id).not.toBe(firstKek);
    expect(await secretsOf(i)).toEqual(before);

    // The new wrap unwraps at the next start.
    await i.restart();
    expect((await i.boot()).state).toBe('operational');
    expect(await secretsOf(i)).toEqual(before);

    // The module goes out of reach: an outage, waited out; it comes back: operational, nothing reset.
    const restore = module.outage(i);
    if (typeof restore === 'string') {
      process.stderr.write(`\n*** ${module.name}: module outage NOT tested: ${restore} ***\n\n`);
      return;
    }
    try {
      await i.restart();
      const outage = await i.boot();
      expect(outage.state).toBe('outage.waiting');
    } finally {
      restore();
    }
    await i.restart();
    expect((await i.boot()).state).toBe('operational');
    expect(await secretsOf(i)).toEqual(before);
  });
});

describe('a module that offers no usable wrap mechanism (SoftHSM2 restricted by slots.mechanisms)', () => {
  const NO_USABLE_WRAP = 'CKM_AES_KEY_GEN,CKM_AES_CBC,CKM_AES_CBC_PAD,CKM_AES_ECB,CKM_AES_GCM';

  it('is refused at SETUP_HSM with the mechanisms named; the token holds no new object; another module can be chosen without a restart', async () => {
    const i = await Install.create('no-usable-wrap');
    installs.push(i);
    const hsm = new SoftHsm('no-usable-wrap');
    appendFileSync(hsm.conf, `slots.mechanisms = ${NO_USABLE_WRAP}\n`);
    i.config.softhsmConf = hsm.conf;
    const token = hsm.initToken(TOKEN_LABEL);
    Object.assign(i, { pin: token.pin });
    await i.restart();
    await i.boot();
    await i.expectSend('SELECT_STORAGE', { storageType: 'physical_hsm' });
    const listObjects = () => hsm.tool(['--token-label', TOKEN_LABEL, '--login', '--pin', 'env:KW_TEST_PIN', '--list-objects'], { ...hsm.env, KW_TEST_PIN: token.pin });
    const objectsBefore = listObjects();

    const refused = await i.send('SETUP_HSM', i.hsmSetupPayload('physical'), i.hsmSecrets('physical'));
    expect(refused.outcome).toBe('rejected');
    expect(refused.wizardState).toBe('WIZARD_SETUP_HSM');
    expect(refused.error?.code).toBe('MECHANISM_UNSUPPORTED');
    expect(refused.error?.message).toMatch(/keyward needs CKM_AES_KEY_GEN for 256-bit keys and one of CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD, CKM_AES_CBC_PAD/);
    expect(refused.error?.message).toMatch(/it offers CKM_AES_KEY_GEN \(generate.*CKM_AES_CBC \(wrap/);
    expect(refused.error?.message).toMatch(/Nothing was created on the token/);
    expect(listObjects()).toBe(objectsBefore);
    expect(listObjects()).not.toMatch(/Secret Key Object/);
    expect(await i.runtime.store.storage.token()).toBeNull();
    expect(await i.runtime.store.keyMaterial.current()).toBeNull();

    // The operator chooses another module in the same process: the set-up goes on from here.
    if (ock.available) {
      // The earlier installs of this process keep their logged-in session on the openCryptoki token,
      // and openCryptoki refuses C_InitToken (in any process) while one is open: they are done with it.
      Pkcs11Module.open(OCK_MODULE).refresh();
      const ockToken = initOckToken(i.config.kekLabel);
      Object.assign(i, { pin: ockToken.pin });
      i.hsmModule = OCK_MODULE;
      i.hsmLabel = OCK_TOKEN_LABEL;
    } else {
      process.stderr.write('\n*** openCryptoki unavailable: the second module is the same SoftHSM2 with its restriction lifted ***\n\n');
      execFileSync('sed', ['-i', '/^slots.mechanisms/d', hsm.conf]);
    }
    const accepted = await i.send('SETUP_HSM', i.hsmSetupPayload('physical'), i.hsmSecrets('physical'));
    expect(accepted).toMatchObject({ outcome: 'applied', wizardState: 'WIZARD_SETUP_MODE' });
    expect((await i.runtime.store.keyMaterial.current())?.wrapped?.mechanism).toBe(ock.available ? 'CKM_AES_CBC_PAD' : 'CKM_AES_KEY_WRAP');
  });

  it('a SoftHSM-kind set-up is refused before its script initializes a token', async () => {
    const i = await Install.create('no-usable-wrap-softhsm');
    installs.push(i);
    appendFileSync(i.config.softhsmConf, `slots.mechanisms = ${NO_USABLE_WRAP}\n`);
    await i.restart();
    await i.boot();
    await i.expectSend('SELECT_STORAGE', { storageType: 'softhsm' });
    const refused = await i.send('SETUP_HSM', i.hsmSetupPayload('softhsm'), i.hsmSecrets('softhsm'));
    expect(refused.error?.code).toBe('MECHANISM_UNSUPPORTED');
    const slots = execFileSync('pkcs11-tool', ['--module', SOFTHSM_MODULE, '--list-slots'], { env: { ...process.env, SOFTHSM2_CONF: i.config.softhsmConf }, encoding: 'utf8' });
    expect(slots).toMatch(/token state:\s+uninitialized/);
    expect(slots).not.toContain(TOKEN_LABEL);
  });
});

describe('a KEK left on the token by an earlier set-up', () => {
  it('is reused knowingly, and the transition log says so; a set-up only ever removes the KEK it made itself', async () => {
    const i = await physical(softHsm, 'kek-left-behind');
    // What an older keyward left after failing at the wrap: a KEK under keyward's label, no DEK.
    const token = new Pkcs11Token({ modulePath: SOFTHSM_MODULE, tokenLabel: TOKEN_LABEL, kekLabel: i.config.kekLabel, pin: { file: join(i.config.softhsmConf, '..', 'given-pin') } });
    writeFileSync(join(i.config.softhsmConf, '..', 'given-pin'), `${i.pin}\n`, { mode: 0o600 });
    registerSecretSource(join(i.config.softhsmConf, '..', 'given-pin'));
    const left = token.generateKek();
    await i.expectSend('SELECT_STORAGE', { storageType: 'physical_hsm' });
    await i.expectSend('SETUP_HSM', i.hsmSetupPayload('physical'), i.hsmSecrets('physical'));
    const { history } = await i.runtime.engine.inspect({ historyLimit: 20 });
    const created = history.find((h) => h.eventType === 'createKek:done');
    expect(created?.payload).toMatchObject({ output: { kekId: left.id, reused: true, mechanism: 'CKM_AES_KEY_WRAP' } });
    expect((await i.runtime.store.keyMaterial.current())?.wrapped?.kek.id).toBe(left.id);

    // destroyKek removes a key only when it is the one named: never another key under the label.
    token.destroyKek({ label: i.config.kekLabel, id: '00'.repeat(16) });
    expect(token.findKekId()).toEqual(left);
    token.destroyKek(left);
    expect(token.findKekId()).toBeNull();
  });
});
