import { createCipheriv, createDecipheriv, createHmac, randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pkcs11js from 'pkcs11js';
import { DekKeyring, generateDek } from '../../crypto/dek-keyring';
import { EncryptedFieldCodec, FieldRef } from '../../crypto/field-codec';
import { FIELD_FORMAT_VERSION } from '../../crypto/field-aead';
import type { WrappedKey } from '../../hsm/key-wrapper';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { softHsmInstallInProcess } from './installs';
import { BenchReport, compareAsyncRates, compareRates, scaled, printBench } from './measure';

const FIELD: FieldRef = { table: 'devices', column: 'est_password' };
/** Many short alternating rounds: on a busy two-core machine the median of a few long ones swings. */
const ROUNDS = scaled(31, 5);
const ROUND_MS = scaled(60, 30);
const UNWRAP_ROUNDS = scaled(9, 3);
const UNWRAP_MS = scaled(300, 100);

const DEFINITIONS = [
  'field encrypt/decrypt: AES-256-GCM through node:crypto writing and reading the same bytes as keyward (docs/formats.md §4): ' +
    'nonce and padding byte from the same randomFillSync pool of 256 values, the same associated data (version | key id | "devices.est_password", built once), ' +
    "the same GCM input (u32 length | 64-byte value | 0-15 zero bytes), output header | nonce | ciphertext | tag, GCM input wiped; decrypt opens keyward's own values and returns the text. " +
    "Checked both ways: keyward opens the baseline's values and the baseline opens keyward's.",
  'DEK unwrap: the PKCS#11 calls keyward makes, straight through pkcs11js on the same token, on one session opened and logged in once (as keyward keeps one per process): ' +
    'per unwrap the PIN read from the same file and compared by HMAC-SHA256 with the one logged in with, C_GetSessionInfo (still logged in), C_FindObjects (KEK by label), ' +
    'C_GetAttributeValue(CKA_ID) of the KEK, C_UnwrapKey, C_GetAttributeValue(CKA_VALUE), C_DestroyObject.',
  'secret read, DEK cached: AES-256-GCM open (as above) of the same two stored values of a device row, with the DEK in a variable; ' +
    'keyward does what the reveal route does besides the row read: custody.ensureDek() and SecretFields.open (the storage type kept in memory between ' +
    "lifecycle versions, which a watcher reads every second as the web server's does).",
];

/**
 * Field encryption and decryption of 64-byte values, the DEK unwrap through SoftHSM2, and the
 * DEK-dependent cost of one request once the DEK is held, each against the same work done raw.
 */
export async function run(): Promise<BenchReport> {
  const keyring = new DekKeyring();
  const dek = generateDek();
  keyring.install(dek);
  const codec = new EncryptedFieldCodec(keyring);
  const raw = new RawFieldGcm(dek.keyId, dek.key, FIELD);
  const values = Array.from({ length: 256 }, () => randomBytes(48).toString('base64')); // 64 characters each
  const sealed = values.map((v) => codec.seal(v, FIELD));
  // Same work means the same format: each side reads what the other writes.
  for (const v of values.slice(0, 16)) {
    if (codec.open(raw.seal(v), FIELD) !== v || raw.open(codec.seal(v, FIELD)) !== v) throw new Error("the raw baseline does not write or read keyward's format");
  }

  const encrypt = compareRates(
    () => {
      for (const v of values) codec.seal(v, FIELD);
      return values.length;
    },
    () => {
      for (const v of values) raw.seal(v);
      return values.length;
    },
    ROUNDS,
    ROUND_MS,
  );
  const decrypt = compareRates(
    () => {
      for (const s of sealed) codec.open(s, FIELD);
      return sealed.length;
    },
    () => {
      for (const s of sealed) raw.open(s);
      return sealed.length;
    },
    ROUNDS,
    ROUND_MS,
  );
  const hsm = await hsmFigures();
  return {
    bench: 'crypto',
    definitions: DEFINITIONS,
    results: [
      { name: 'field encrypt, 64-byte values', value: encrypt.ours, unit: 'ops/s', baseline: encrypt.baseline, ratio: encrypt.ours / encrypt.baseline },
      { name: 'field decrypt, 64-byte values', value: decrypt.ours, unit: 'ops/s', baseline: decrypt.baseline, ratio: decrypt.ours / decrypt.baseline },
      {
        name: 'DEK unwrap through SoftHSM2 (kept session, find KEK, unwrap, read value)',
        value: hsm.unwrap.ours,
        unit: 'ms',
        baseline: hsm.unwrap.baseline,
        ratio: hsm.unwrap.baseline / hsm.unwrap.ours,
      },
      { name: 'secret read per request, DEK cached (ensureDek + open 2 columns)', value: hsm.cached.ours, unit: 'µs', baseline: hsm.cached.baseline, ratio: hsm.cached.baseline / hsm.cached.ours },
    ],
  };
}

/** keyward's field format done with node:crypto alone, for one key and one column. */
export class RawFieldGcm {
  private readonly pool = Buffer.alloc(13 * 256);
  private poolOffset = this.pool.length;
  private readonly header: Buffer;
  private readonly aad: Buffer;

  constructor(
    keyId: string,
    private readonly key: Buffer,
    field: FieldRef,
  ) {
    this.header = Buffer.concat([Buffer.from([FIELD_FORMAT_VERSION]), Buffer.from(keyId, 'hex')]);
    this.aad = Buffer.concat([this.header, Buffer.from(`${field.table}.${field.column}`)]);
  }

  seal(value: string): Buffer {
    if (this.poolOffset >= this.pool.length) {
      randomFillSync(this.pool);
      this.poolOffset = 0;
    }
    const random = this.pool.subarray(this.poolOffset, (this.poolOffset += 13));
    const plaintext = Buffer.from(value, 'utf8');
    const body = Buffer.alloc(4 + plaintext.length + (random[12]! % 16));
    body.writeUInt32BE(plaintext.length, 0);
    plaintext.copy(body, 4);
    const out = Buffer.allocUnsafe(9 + 12 + body.length + 16);
    this.header.copy(out, 0);
    random.copy(out, 9, 0, 12);
    const cipher = createCipheriv('aes-256-gcm', this.key, out.subarray(9, 21));
    cipher.setAAD(this.aad);
    const written = cipher.update(body).copy(out, 21);
    cipher.final();
    cipher.getAuthTag().copy(out, 21 + written);
    body.fill(0);
    return out;
  }

  open(stored: Buffer): string {
    const tagStart = stored.length - 16;
    const decipher = createDecipheriv('aes-256-gcm', this.key, stored.subarray(9, 21));
    decipher.setAAD(this.aad);
    decipher.setAuthTag(stored.subarray(tagStart));
    const body = decipher.update(stored.subarray(21, tagStart));
    decipher.final();
    return body.toString('utf8', 4, 4 + body.readUInt32BE(0));
  }
}

/** On a completed SoftHSM install: the DEK unwrap (ms) and a cached-DEK secret read (µs), each with its raw twin. */
async function hsmFigures(): Promise<{ unwrap: { ours: number; baseline: number }; cached: { ours: number; baseline: number } }> {
  const home = mkdtempSync(join(tmpdir(), 'keyward-bench-crypto-'));
  const { runtime } = await softHsmInstallInProcess(home);
  try {
    const { store, custody } = runtime;
    const material = await store.keyMaterial.current();
    const tokenConfig = await store.storage.token();
    if (!material?.wrapped || !tokenConfig) throw new Error('the install holds no wrapped DEK or no token');
    const wrapped: WrappedKey = material.wrapped;
    const wrapper = await custody.wrapper();
    const rawUnwrap = rawUnwrapper(tokenConfig.modulePath, tokenConfig.tokenLabel, tokenConfig.kekLabel, custody.userPinFile);
    const dek = await wrapper.unwrap(wrapped);
    if (!rawUnwrap(wrapped.blob).equals(dek)) throw new Error("the raw unwrap does not yield keyward's DEK");
    const unwrap = await compareAsyncRates(
      async () => {
        await wrapper.unwrap(wrapped);
        return 1;
      },
      async () => {
        rawUnwrap(wrapped.blob);
        return 1;
      },
      UNWRAP_ROUNDS,
      UNWRAP_MS,
    );

    await custody.ensureDek();
    const id = await store.devices.create({ name: 'bench-device', estPassword: randomBytes(18).toString('base64url'), cmpSharedSecret: randomBytes(18).toString('base64url') });
    const row = (await store.db<{ id: number; est_password: Buffer; cmp_shared_secret: Buffer }>('devices').where({ id }).first('est_password', 'cmp_shared_secret'))!;
    const keyId = runtime.keyring.current!;
    const rawEst = new RawFieldGcm(keyId, runtime.keyring.key(keyId), { table: 'devices', column: 'est_password' });
    const rawCmp = new RawFieldGcm(keyId, runtime.keyring.key(keyId), { table: 'devices', column: 'cmp_shared_secret' });
    const device = await store.devices.get(id);
    if (device?.estPassword !== rawEst.open(row.est_password) || device.cmpSharedSecret !== rawCmp.open(row.cmp_shared_secret)) throw new Error("the raw open does not read the device's secrets");
    // As in the web server, whose lifecycle watcher reads the version every second (its default interval).
    const WATCH_MS = 1000;
    store.cache.enable(WATCH_MS * 3 + 1000);
    await runtime.engine.load();
    const watcher = setInterval(() => void runtime.engine.load().catch(() => undefined), WATCH_MS);
    let cached: Awaited<ReturnType<typeof compareAsyncRates>>;
    try {
      cached = await compareAsyncRates(
        async () => {
          await custody.ensureDek();
          await store.secrets.open('devices', row, ['est_password', 'cmp_shared_secret'] as const);
          return 1;
        },
        async () => {
          rawEst.open(row.est_password);
          rawCmp.open(row.cmp_shared_secret);
          return 1;
        },
        ROUNDS,
        ROUND_MS,
      );
    } finally {
      clearInterval(watcher);
    }
    return {
      unwrap: { ours: 1000 / unwrap.ours, baseline: 1000 / unwrap.baseline },
      cached: { ours: 1e6 / cached.ours, baseline: 1e6 / cached.baseline },
    };
  } finally {
    await runtime.close();
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * keyward's unwrap call sequence, straight through pkcs11js on the module keyward loaded: one session
 * opened and logged in once, then per unwrap what keyward checks and calls on its kept session.
 */
function rawUnwrapper(modulePath: string, tokenLabel: string, kekLabel: string, pinFile: string): (blob: Buffer) => Buffer {
  const api = Pkcs11Module.open(modulePath).api;
  const template: pkcs11js.Template = [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_SENSITIVE, value: false },
    { type: pkcs11js.CKA_EXTRACTABLE, value: true },
  ];
  const readPin = () => readFileSync(pinFile, 'utf8').replace(/\r?\n$/, '');
  const tagKey = randomBytes(32);
  const tag = (pin: string) => createHmac('sha256', tagKey).update(pin, 'utf8').digest();
  const slot = api.C_GetSlotList(true).find((s) => api.C_GetTokenInfo(s).label.trim() === tokenLabel);
  if (slot === undefined) throw new Error(`no token labelled ${tokenLabel}`);
  const session = api.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  const loggedInWith = tag(readPin());
  try {
    api.C_Login(session, pkcs11js.CKU_USER, readPin());
  } catch (error) {
    // keyward's own kept session has logged this process in already.
    if ((error as { code?: number }).code !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw error;
  }
  return (blob) => {
    if (!timingSafeEqual(tag(readPin()), loggedInWith) || api.C_GetSessionInfo(session).state !== 3) throw new Error('the raw session is not logged in');
    api.C_FindObjectsInit(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_LABEL, value: kekLabel },
    ]);
    const [kek] = api.C_FindObjects(session, 2);
    api.C_FindObjectsFinal(session);
    api.C_GetAttributeValue(session, kek!, [{ type: pkcs11js.CKA_ID }]);
    const carrier = api.C_UnwrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP }, kek!, blob, template);
    try {
      return Buffer.from(api.C_GetAttributeValue(session, carrier, [{ type: pkcs11js.CKA_VALUE }])[0]!.value);
    } finally {
      api.C_DestroyObject(session, carrier);
    }
  };
}

if (require.main === module) void printBench('crypto', run);
