import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import * as pkcs11js from 'pkcs11js';
import { KeyCustodyError } from '../../errors/key-custody-error';
import type { WrappedKey } from '../../hsm/key-wrapper';
import { Pkcs11KeyWrapper } from '../../hsm/pkcs11-key-wrapper';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { mapPkcs11Error, Pkcs11Token } from '../../hsm/pkcs11-token';
import { readCapabilities, requireUsableToken } from '../../hsm/token-capabilities';
import { initOckToken, OCK_MODULE, OckToken, releaseOpenCryptoki, reportOckUnavailable, useOpenCryptoki } from '../support/opencryptoki';
import { SoftHsm, SOFTHSM_MODULE } from '../support/softhsm';
import { expectCode } from '../support/expect-code';

/**
 * Mechanism negotiation against real modules: SoftHSM2 as shipped (RFC 3394), SoftHSM2 restricted by
 * its own `slots.mechanisms` setting (RFC 5649; nothing usable), and openCryptoki's software token,
 * which offers only AES-ECB, AES-CBC and AES-CBC-PAD for wrapping.
 */
jest.setTimeout(60_000);

// SoftHSM2 2.6.1 ignores the first name of a "-" (disable) list, so the lists name what stays enabled.
export const KWP_ONLY = 'CKM_AES_KEY_GEN,CKM_AES_KEY_WRAP_PAD,CKM_AES_CBC_PAD,CKM_AES_ECB,CKM_AES_GCM';
/** A module that can wrap only with plain CKM_AES_CBC, which keyward does not use. */
export const NO_USABLE_WRAP = 'CKM_AES_KEY_GEN,CKM_AES_CBC,CKM_AES_CBC_PAD,CKM_AES_ECB,CKM_AES_GCM';

/** A SoftHSM2 installation whose softhsm2.conf restricts the mechanisms, and a token in it. */
function restrictedSoftHsm(name: string, mechanisms: string | null) {
  const hsm = new SoftHsm(name);
  if (mechanisms !== null) appendFileSync(hsm.conf, `slots.mechanisms = ${mechanisms}\n`);
  const token = hsm.initToken(`Kw-${name}`.slice(0, 32));
  Pkcs11Module.open(SOFTHSM_MODULE).refresh();
  return { hsm, token, pkcs11: new Pkcs11Token(token.config) };
}

/** A token object with a known value, so that a blob can be opened in software as docs/formats.md says. */
function knownKek(pkcs11: Pkcs11Token, label: string, value: Buffer, id: Buffer = Buffer.from('0a0b0c0d', 'hex')): void {
  pkcs11.withSession((api, session) =>
    api.C_CreateObject(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_LABEL, value: label },
      { type: pkcs11js.CKA_ID, value: id },
      { type: pkcs11js.CKA_VALUE, value },
      { type: pkcs11js.CKA_WRAP, value: true },
      { type: pkcs11js.CKA_UNWRAP, value: true },
    ]),
  );
}

const KNOWN_KEK = Buffer.from('000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F', 'hex');
const DEK = Buffer.from('00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F', 'hex');

describe('SoftHSM2 as shipped', () => {
  it('keeps CKM_AES_KEY_WRAP, shows its mechanisms and PIN limits, and still unwraps a blob written before negotiation', async () => {
    const { pkcs11 } = restrictedSoftHsm('shipped', null);
    const capabilities = readCapabilities(SOFTHSM_MODULE, pkcs11.config.tokenLabel)!;
    expect(capabilities.wrap).toBe('CKM_AES_KEY_WRAP');
    expect(capabilities.pinLength).toEqual({ min: 4, max: 255 });
    expect(capabilities.mechanisms.map((m) => m.name)).toEqual(expect.arrayContaining(['CKM_AES_KEY_GEN', 'CKM_AES_KEY_WRAP', 'CKM_AES_KEY_WRAP_PAD', 'CKM_AES_GCM']));

    pkcs11.generateKek();
    const wrapper = new Pkcs11KeyWrapper(pkcs11);
    const wrapped = await wrapper.wrap(DEK);
    expect(wrapped).toMatchObject({ mechanism: 'CKM_AES_KEY_WRAP' });
    expect(wrapped.blob).toHaveLength(40);

    // A database row from before this change: the same call the old wrapper made, recorded as it recorded it.
    const legacy = pkcs11.withSession((api, session) => {
      const kek = pkcs11.requireKek(api, session);
      const carrier = api.C_CreateObject(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_TOKEN, value: false },
        { type: pkcs11js.CKA_SENSITIVE, value: false },
        { type: pkcs11js.CKA_EXTRACTABLE, value: true },
        { type: pkcs11js.CKA_VALUE, value: DEK },
      ]);
      const blob = Buffer.from(api.C_WrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP }, kek.handle, carrier, Buffer.alloc(56)));
      api.C_DestroyObject(session, carrier);
      return { mechanism: 'CKM_AES_KEY_WRAP', kek: kek.id, blob } satisfies WrappedKey;
    });
    expect(await new Pkcs11KeyWrapper(pkcs11).unwrap(legacy)).toEqual(DEK);
  });
});

describe('SoftHSM2 restricted by slots.mechanisms', () => {
  it('falls back to CKM_AES_KEY_WRAP_PAD, an RFC 5649 blob that OpenSSL opens, with its integrity check', async () => {
    const { pkcs11 } = restrictedSoftHsm('kwp', KWP_ONLY);
    expect(readCapabilities(SOFTHSM_MODULE, pkcs11.config.tokenLabel)!.wrap).toBe('CKM_AES_KEY_WRAP_PAD');
    knownKek(pkcs11, 'known-kek', KNOWN_KEK);
    const wrapper = new Pkcs11KeyWrapper(new Pkcs11Token({ ...pkcs11.config, kekLabel: 'known-kek' }));
    const wrapped = await wrapper.wrap(DEK);
    expect(wrapped.mechanism).toBe('CKM_AES_KEY_WRAP_PAD');
    const openssl = createCipheriv('id-aes256-wrap-pad', KNOWN_KEK, Buffer.from('A65959A6', 'hex'));
    expect(wrapped.blob).toEqual(Buffer.concat([openssl.update(DEK), openssl.final()]));
    expect(await wrapper.unwrap(wrapped)).toEqual(DEK);
    for (const i of [0, 8, 39]) {
      const blob = Buffer.from(wrapped.blob);
      blob[i]! ^= 0x01;
      await expectCode(wrapper.unwrap({ ...wrapped, blob }), 'WRAPPED_BLOB_CORRUPT');
    }
  });

  it('refuses a token with no usable wrap, naming what keyward needs and what the token offers', () => {
    const { pkcs11 } = restrictedSoftHsm('none', NO_USABLE_WRAP);
    const capabilities = readCapabilities(SOFTHSM_MODULE, pkcs11.config.tokenLabel)!;
    expect(capabilities.wrap).toBeNull();
    let message = '';
    try {
      requireUsableToken(capabilities);
    } catch (error) {
      expect((error as KeyCustodyError).code).toBe('MECHANISM_UNSUPPORTED');
      message = (error as Error).message;
    }
    expect(message).toMatch(/CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD, CKM_AES_CBC_PAD/);
    expect(message).toMatch(/offers .*CKM_AES_CBC \(wrap/);
    expect(message).toMatch(/CKM_AES_CBC_PAD \(encrypt\/decrypt only/);
  });
});

describe("openCryptoki's software token (CKM_AES_CBC_PAD only)", () => {
  const availability = useOpenCryptoki();
  afterAll(releaseOpenCryptoki);
  if (!availability.available) {
    it('cannot run here, and says so', () => reportOckUnavailable(availability.reason));
    return;
  }
  let token: OckToken;
  let pkcs11: Pkcs11Token;
  beforeAll(() => {
    token = initOckToken();
    Pkcs11Module.open(OCK_MODULE).refresh();
    pkcs11 = new Pkcs11Token(token.config);
  });

  it("shows CBC-PAD as the wrap and the token's PIN limits", () => {
    const capabilities = readCapabilities(OCK_MODULE, token.label)!;
    expect(capabilities).toMatchObject({ tokenLabel: token.label, wrap: 'CKM_AES_CBC_PAD', kekGeneration: true, pinLength: { min: 4, max: 8 } });
    expect(capabilities.mechanisms.map((m) => m.name)).not.toContain('CKM_AES_KEY_WRAP');
  });

  it('reports a refused unwrap template by its CKR name and meaning, not as corruption', () => {
    const kek = pkcs11.generateKek();
    expect(kek.id).toMatch(/^[0-9a-f]{32}$/);
    const refused = pkcs11.withSession((api, session) => {
      const handle = pkcs11.requireKek(api, session).handle;
      const secret = [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_TOKEN, value: false },
        { type: pkcs11js.CKA_SENSITIVE, value: false },
        { type: pkcs11js.CKA_EXTRACTABLE, value: true },
      ];
      const carrier = api.C_CreateObject(session, [...secret, { type: pkcs11js.CKA_VALUE, value: DEK }]);
      const iv = Buffer.alloc(16, 1);
      const blob = api.C_WrapKey(session, { mechanism: pkcs11js.CKM_AES_CBC_PAD, parameter: iv }, handle, carrier, Buffer.alloc(64));
      try {
        api.C_UnwrapKey(session, { mechanism: pkcs11js.CKM_AES_CBC_PAD, parameter: iv }, handle, blob, secret);
        return null;
      } catch (error) {
        return mapPkcs11Error(error, 'unwrapping');
      }
    });
    expect(refused?.code).toBe('PKCS11_ERROR');
    expect(refused?.message).toBe('unwrapping failed: CKR_ATTRIBUTE_READ_ONLY: the module refused an attribute the request set');
  });

  it('wraps with CBC-PAD and unwraps (retrying with the minimal template the module accepts)', async () => {
    const wrapper = new Pkcs11KeyWrapper(pkcs11);
    const wrapped = await wrapper.wrap(DEK);
    expect(wrapped.mechanism).toBe('CKM_AES_CBC_PAD');
    expect(wrapped.blob).toHaveLength(100);
    expect(await wrapper.unwrap(wrapped)).toEqual(DEK);
    // A fresh IV per wrap.
    expect((await wrapper.wrap(DEK)).blob.subarray(0, 16)).not.toEqual(wrapped.blob.subarray(0, 16));
  });

  it('tells every flipped blob byte (WRAPPED_BLOB_CORRUPT) from a wrong KEK (KEK_REPLACED), never a wrong DEK', async () => {
    const wrapper = new Pkcs11KeyWrapper(pkcs11);
    const wrapped = await wrapper.wrap(DEK);
    for (let i = 0; i < wrapped.blob.length; i++) {
      const blob = Buffer.from(wrapped.blob);
      blob[i]! ^= 0x01;
      const error = await expectCode(wrapper.unwrap({ ...wrapped, blob }), 'WRAPPED_BLOB_CORRUPT');
      expect(error.message).toMatch(/^the wrapped DEK failed its integrity check: /);
    }
    await expectCode(wrapper.unwrap({ ...wrapped, blob: wrapped.blob.subarray(0, 99) }), 'WRAPPED_BLOB_CORRUPT');

    // A wrong KEK: another AES key under the same label and even the same CKA_ID (an operator's import).
    const sameId = pkcs11.withSession((api, session) => api.C_GetAttributeValue(session, pkcs11.requireKek(api, session).handle, [{ type: pkcs11js.CKA_ID }])[0]!.value);
    const other = new Pkcs11Token({ ...token.config, kekLabel: 'other-kek' });
    knownKek(pkcs11, 'other-kek', Buffer.alloc(32, 0x5a), sameId);
    const wrong = await expectCode(new Pkcs11KeyWrapper(other).unwrap({ ...wrapped, kek: { ...wrapped.kek, label: 'other-kek' } }), 'KEK_REPLACED');
    expect(wrong.message).toMatch(/check value differs/);
  });

  // A KEK rotation on a CBC-PAD token: two KEKs under one label, told apart by CKA_ID and by the check value.
  it('wraps under the chosen KEK of two and tells the other by its check value (KEK_REPLACED)', async () => {
    const oldKek = pkcs11.findKekId()!;
    const newKek = pkcs11.generateAdditionalKek();
    const [dekOld, dekNew] = [Buffer.alloc(32, 0x11), Buffer.alloc(32, 0x22)];
    const wrappedOld = await new Pkcs11KeyWrapper(pkcs11, { kekId: oldKek.id }).wrap(dekOld);
    const wrappedNew = await new Pkcs11KeyWrapper(pkcs11, { kekId: newKek.id }).wrap(dekNew);
    expect([wrappedOld.mechanism, wrappedNew.mechanism]).toEqual(['CKM_AES_CBC_PAD', 'CKM_AES_CBC_PAD']);
    expect([wrappedOld.kek, wrappedNew.kek]).toEqual([oldKek, newKek]);
    const wrapper = new Pkcs11KeyWrapper(pkcs11, { kekId: newKek.id });
    expect(await wrapper.unwrap(wrappedOld)).toEqual(dekOld);
    expect(await wrapper.unwrap(wrappedNew)).toEqual(dekNew);
    const wrong = await expectCode(wrapper.unwrap({ ...wrappedNew, kek: oldKek }), 'KEK_REPLACED');
    expect(wrong.message).toMatch(/check value differs/);
    expect(pkcs11.destroyKeksExcept(newKek)).toEqual([oldKek]);
    expect(pkcs11.listKeks()).toEqual([newKek]);
  });

  it('writes the CBC-PAD blob exactly as docs/formats.md describes it (opened here with OpenSSL alone)', async () => {
    knownKek(pkcs11, 'known-kek', KNOWN_KEK);
    const wrapped = await new Pkcs11KeyWrapper(new Pkcs11Token({ ...token.config, kekLabel: 'known-kek' })).wrap(DEK);
    const blob = wrapped.blob;
    const [iv, ciphertext, nonce, tag, kekCheck] = [blob.subarray(0, 16), blob.subarray(16, 64), blob.subarray(64, 76), blob.subarray(76, 92), blob.subarray(92, 100)];
    const cbc = createDecipheriv('aes-256-cbc', KNOWN_KEK, iv);
    const dek = Buffer.concat([cbc.update(ciphertext), cbc.final()]);
    expect(dek).toEqual(DEK);
    const gcm = createDecipheriv('aes-256-gcm', dek, nonce);
    gcm.setAAD(Buffer.concat([Buffer.from('keyward DEK check v1'), iv, ciphertext]));
    gcm.setAuthTag(tag);
    expect(() => gcm.final()).not.toThrow();
    const check = createCipheriv('aes-256-cbc', KNOWN_KEK, Buffer.alloc(16));
    expect(Buffer.concat([check.update(createHash('sha256').update('keyward KEK check v1').digest()), check.final()]).subarray(0, 8)).toEqual(kekCheck);
  });
});
