import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import * as pkcs11js from 'pkcs11js';
import { DekKeyring, generateDek } from '../../hsm/dek-keyring';
import { EncryptedFieldCodec } from '../../hsm/field-codec';
import { Pkcs11KeyWrapper } from '../../hsm/pkcs11-key-wrapper';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { Pkcs11Token } from '../../hsm/pkcs11-token';
import { BenchReport, compareAsyncRates, compareRates, printTable } from './measure';

const SOFTHSM = '/usr/lib/softhsm/libsofthsm2.so';
const FIELD = { table: 'devices', column: 'est_password' };
/** Many short alternating rounds: on a busy two-core machine the median of a few long ones swings. */
const ROUNDS = 31;
const ROUND_MS = 60;

/**
 * Field encryption and decryption of 64-byte values against raw AES-256-GCM in Node on the same data
 * (random nonce each, as keyward's), and the DEK unwrap through SoftHSM2 against a bare C_UnwrapKey.
 */
export async function run(): Promise<BenchReport> {
  const keyring = new DekKeyring();
  const dek = generateDek();
  keyring.install(dek);
  const codec = new EncryptedFieldCodec(keyring);
  const values = Array.from({ length: 256 }, () => randomBytes(48).toString('base64')); // 64 characters each
  const sealed = values.map((v) => codec.seal(v, FIELD));
  const raw = values.map((v) => rawEncrypt(dek.key, Buffer.from(v)));

  const encrypt = compareRates(
    () => {
      for (const v of values) codec.seal(v, FIELD);
      return values.length;
    },
    () => {
      for (const v of values) rawEncrypt(dek.key, Buffer.from(v));
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
      for (const r of raw) rawDecrypt(dek.key, r).toString();
      return raw.length;
    },
    ROUNDS,
    ROUND_MS,
  );

  const unwrap = await unwrapLatency();
  const report: BenchReport = {
    bench: 'crypto',
    results: [
      { name: 'field encrypt, 64-byte values', value: encrypt.ours, unit: 'ops/s', baseline: encrypt.baseline, ratio: encrypt.ours / encrypt.baseline },
      { name: 'field decrypt, 64-byte values', value: decrypt.ours, unit: 'ops/s', baseline: decrypt.baseline, ratio: decrypt.ours / decrypt.baseline },
      { name: 'DEK unwrap through SoftHSM2 (session, login, find KEK, unwrap)', value: unwrap.ours, unit: 'ms', baseline: unwrap.baseline, ratio: unwrap.baseline / unwrap.ours },
    ],
  };
  return report;
}

function rawEncrypt(key: Buffer, plaintext: Buffer): { nonce: Buffer; ciphertext: Buffer; tag: Buffer } {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { nonce, ciphertext, tag: cipher.getAuthTag() };
}

function rawDecrypt(key: Buffer, value: { nonce: Buffer; ciphertext: Buffer; tag: Buffer }): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, value.nonce);
  decipher.setAuthTag(value.tag);
  return Buffer.concat([decipher.update(value.ciphertext), decipher.final()]);
}

/** Milliseconds per unwrap: keyward's whole path, and C_UnwrapKey alone in an open, logged-in session. */
async function unwrapLatency(): Promise<{ ours: number; baseline: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-bench-hsm-'));
  try {
    mkdirSync(join(dir, 'tokens'));
    writeFileSync(join(dir, 'softhsm2.conf'), `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    process.env.SOFTHSM2_CONF = join(dir, 'softhsm2.conf');
    const pin = randomBytes(12).toString('hex');
    const env = { ...process.env, KW_SO: randomBytes(12).toString('hex'), KW_PIN: pin };
    execFileSync('pkcs11-tool', ['--module', SOFTHSM, '--slot-index', '0', '--init-token', '--label', 'Bench', '--so-pin', 'env:KW_SO'], { env, stdio: 'ignore' });
    execFileSync('pkcs11-tool', ['--module', SOFTHSM, '--token-label', 'Bench', '--login', '--login-type', 'so', '--so-pin', 'env:KW_SO', '--init-pin', '--pin', 'env:KW_PIN'], { env, stdio: 'ignore' });
    writeFileSync(join(dir, 'pin'), pin, { mode: 0o600 });
    const module = Pkcs11Module.open(SOFTHSM);
    module.refresh();
    const token = new Pkcs11Token({ modulePath: SOFTHSM, tokenLabel: 'Bench', kekLabel: 'bench-kek', pin: { file: join(dir, 'pin') } });
    token.generateKek();
    const wrapper = new Pkcs11KeyWrapper(token);
    const wrapped = await wrapper.wrap(randomBytes(32));

    const api = module.api;
    const slot = module.findSlot('Bench')!;
    const session = api.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    api.C_Login(session, pkcs11js.CKU_USER, pin);
    const kek = token.findKekHandle(api, session)!;
    const template = [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_SENSITIVE, value: false },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    ];
    const rates = await compareAsyncRates(
      async () => {
        await wrapper.unwrap(wrapped);
        return 1;
      },
      async () => {
        const handle = api.C_UnwrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP }, kek, wrapped.blob, template);
        api.C_DestroyObject(session, handle);
        return 1;
      },
    );
    api.C_CloseSession(session);
    return { ours: 1000 / rates.ours, baseline: 1000 / rates.baseline };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  void run().then((report) => {
    printTable(report);
    process.stdout.write(`${JSON.stringify(report)}\n`);
  });
}
