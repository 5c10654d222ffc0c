import { createCipheriv } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';
import { Pkcs11KeyWrapper } from '../../hsm/pkcs11-key-wrapper';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { mapPkcs11Error, Pkcs11Token } from '../../hsm/pkcs11-token';
import { SoftHsm, SoftHsmToken, SOFTHSM_MODULE } from '../support/softhsm';
import { expectCode } from '../support/expect-code';

describe('the KEK in a real SoftHSM2 token', () => {
  let hsm: SoftHsm;
  let token: SoftHsmToken;
  let pkcs11: Pkcs11Token;

  beforeAll(() => {
    hsm = new SoftHsm('kek');
    token = hsm.initToken('KeywardKek');
    pkcs11 = new Pkcs11Token(token.config);
    Pkcs11Module.open(SOFTHSM_MODULE).refresh();
  });

  it('generates the KEK inside the token: 32-byte AES, sensitive, never extractable, value unreadable (pkcs11-tool)', () => {
    const id = pkcs11.generateKek();
    expect(id.label).toBe('trustpoint-kek');
    expect(id.id).toMatch(/^[0-9a-f]{32}$/);

    const env = { ...hsm.env, KW_TEST_PIN: token.pin };
    const listing = hsm.tool(['--token-label', token.label, '--login', '--pin', 'env:KW_TEST_PIN', '--list-objects', '--type', 'secrkey'], env);
    expect(listing).toMatch(/Secret Key Object; AES length 32/);
    expect(listing).toMatch(/label:\s+trustpoint-kek/);
    expect(listing).toMatch(new RegExp(`ID:\\s+${id.id}`));
    const usage = /Usage:\s+([^\n]*)/.exec(listing)![1]!;
    expect(usage).toMatch(/wrap/);
    expect(usage).toMatch(/unwrap/);
    expect(usage).not.toMatch(/encrypt|decrypt|sign|verify/);
    const access = /Access:\s+([^\n]*)/.exec(listing)![1]!.split(/,\s*/);
    expect(access).toEqual(expect.arrayContaining(['sensitive', 'always sensitive', 'never extractable', 'local']));
    expect(access).not.toContain('extractable');

    let readFailed = false;
    try {
      hsm.tool(['--token-label', token.label, '--login', '--pin', 'env:KW_TEST_PIN', '--read-object', '--type', 'secrkey', '--label', 'trustpoint-kek'], env);
    } catch (error) {
      readFailed = true;
      expect(String((error as { stderr?: string }).stderr)).toMatch(/CKR_ATTRIBUTE_SENSITIVE|sensitive|failed/i);
    }
    expect(readFailed).toBe(true);
  });

  it('finds the KEK by label, refuses a second one, and ensureKek keeps the existing KEK', async () => {
    const id = pkcs11.findKekId();
    expect(id).not.toBeNull();
    await expectCode(() => pkcs11.generateKek(), 'KEK_EXISTS');
    expect(pkcs11.ensureKek()).toEqual(id);
  });

  it('wraps a DEK to 40 bytes with CKM_AES_KEY_WRAP and unwraps it back', async () => {
    const wrapper = new Pkcs11KeyWrapper(pkcs11);
    const dek = Buffer.alloc(32, 7);
    const wrapped = await wrapper.wrap(dek);
    expect(wrapped.mechanism).toBe('CKM_AES_KEY_WRAP');
    expect(wrapped.blob).toHaveLength(40);
    expect(await wrapper.unwrap(wrapped)).toEqual(dek);
    expect(wrapped.kek).toEqual(await wrapper.keyId());
  });

  it('reports any flipped byte of a wrapped DEK as corrupt', async () => {
    const wrapper = new Pkcs11KeyWrapper(pkcs11);
    const wrapped = await wrapper.wrap(Buffer.alloc(32, 9));
    for (let i = 0; i < wrapped.blob.length; i++) {
      const blob = Buffer.from(wrapped.blob);
      blob[i]! ^= 0x01;
      await expectCode(wrapper.unwrap({ ...wrapped, blob }), 'WRAPPED_BLOB_CORRUPT');
    }
    await expectCode(wrapper.unwrap({ ...wrapped, blob: wrapped.blob.subarray(0, 39) }), 'WRAPPED_BLOB_CORRUPT');
  });

  it('tells a replaced KEK from the one that wrapped the DEK', async () => {
    const wrapper = new Pkcs11KeyWrapper(pkcs11);
    const wrapped = await wrapper.wrap(Buffer.alloc(32, 3));
    await expectCode(wrapper.unwrap({ ...wrapped, kek: { ...wrapped.kek, id: '00'.repeat(16) } }), 'KEK_REPLACED');
  });

  it('gives distinct errors for a missing module, a missing token, a wrong PIN, a missing PIN and a missing KEK', async () => {
    await expectCode(() => Pkcs11Module.open('/nonexistent/libpkcs11.so'), 'MODULE_MISSING');
    await expectCode(() => new Pkcs11Token({ ...token.config, tokenLabel: 'NoSuchToken' }).findKekId(), 'TOKEN_MISSING');

    const wrongPin = new Pkcs11Token({ ...token.config, pin: { env: 'KW_TEST_WRONG_PIN' } });
    process.env.KW_TEST_WRONG_PIN = 'not-the-pin-0000';
    try {
      const error = await expectCode(() => wrongPin.findKekId(), 'WRONG_PIN');
      expect(error.message).not.toContain('not-the-pin-0000');
    } finally {
      delete process.env.KW_TEST_WRONG_PIN;
    }
    await expectCode(() => new Pkcs11Token({ ...token.config, pin: { env: 'KW_TEST_UNSET_PIN' } }).findKekId(), 'PIN_MISSING');

    const other = hsm.initToken('KeywardNoKek');
    Pkcs11Module.open(SOFTHSM_MODULE).refresh();
    const noKek = new Pkcs11KeyWrapper(new Pkcs11Token(other.config));
    await expectCode(noKek.keyId(), 'KEK_MISSING');
    await expectCode(noKek.wrap(Buffer.alloc(32)), 'KEK_MISSING');
  });

  it('maps an unsupported mechanism to its own error, from the token and from a stored record', async () => {
    const fromToken = pkcs11.withSession((api, session) => {
      try {
        api.C_GenerateKey(session, { mechanism: 0x7ffffff0 }, [{ type: pkcs11js.CKA_TOKEN, value: false }]);
      } catch (error) {
        return mapPkcs11Error(error, 'generating with a bogus mechanism');
      }
      return null;
    });
    expect(fromToken?.code).toBe('MECHANISM_UNSUPPORTED');

    const wrapper = new Pkcs11KeyWrapper(pkcs11);
    const wrapped = await wrapper.wrap(Buffer.alloc(32, 1));
    await expectCode(wrapper.unwrap({ ...wrapped, mechanism: 'CKM_AES_ECB' as never }), 'MECHANISM_UNSUPPORTED');
  });

  it('sees a token deleted under it only as missing, after a probe', async () => {
    const probe = await pkcs11.probe();
    expect(probe).toMatchObject({ moduleLoaded: true, tokenPresent: true });
    expect(probe.kek?.label).toBe('trustpoint-kek');
    hsm.deleteAllTokens();
    expect(await pkcs11.probe()).toEqual({ moduleLoaded: true, tokenPresent: false, kek: null });
    await expectCode(new Pkcs11KeyWrapper(pkcs11).keyId(), 'TOKEN_MISSING');
    expect(await new Pkcs11Token({ ...token.config, modulePath: '/nonexistent.so' }).probe()).toMatchObject({ moduleLoaded: false, tokenPresent: null, problem: 'MODULE_MISSING' });
  });
});

describe('RFC 3394 known answers through SoftHSM2', () => {
  // RFC 3394 §4.3 and §4.6: 256-bit KEK 000102…1F.
  const kek = Buffer.from('000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F', 'hex');
  const vectors = [
    { data: '00112233445566778899AABBCCDDEEFF', wrapped: '64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7' },
    {
      data: '00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F',
      wrapped: '28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21',
    },
  ];

  let hsm: SoftHsm;
  let pkcs11: Pkcs11Token;

  beforeAll(() => {
    hsm = new SoftHsm('rfc3394');
    pkcs11 = new Pkcs11Token(hsm.initToken('KeywardRfc').config);
    Pkcs11Module.open(SOFTHSM_MODULE).refresh();
  });

  it.each(vectors)('wraps and unwraps $data', ({ data, wrapped }) => {
    pkcs11.withSession((api, session) => {
      const secret = (value: Buffer, extra: pkcs11js.Template) =>
        api.C_CreateObject(session, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
          { type: pkcs11js.CKA_TOKEN, value: false },
          { type: pkcs11js.CKA_VALUE, value },
          ...extra,
        ]);
      const kekHandle = secret(kek, [
        { type: pkcs11js.CKA_WRAP, value: true },
        { type: pkcs11js.CKA_UNWRAP, value: true },
      ]);
      const dataHandle = secret(Buffer.from(data, 'hex'), [
        { type: pkcs11js.CKA_EXTRACTABLE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: false },
      ]);
      const out = api.C_WrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP }, kekHandle, dataHandle, Buffer.alloc(64));
      expect(out.toString('hex').toUpperCase()).toBe(wrapped);
      const unwrapped = api.C_UnwrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP }, kekHandle, Buffer.from(wrapped, 'hex'), [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_TOKEN, value: false },
        { type: pkcs11js.CKA_EXTRACTABLE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: false },
      ]);
      expect(api.C_GetAttributeValue(session, unwrapped, [{ type: pkcs11js.CKA_VALUE }])[0]!.value).toEqual(Buffer.from(data, 'hex'));
    });
    // docs/formats.md lets an independent implementation unwrap with software RFC 3394 (OpenSSL's id-aes256-wrap).
    const cipher = createCipheriv('id-aes256-wrap', kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
    expect(
      Buffer.concat([cipher.update(Buffer.from(data, 'hex')), cipher.final()])
        .toString('hex')
        .toUpperCase(),
    ).toBe(wrapped);
  });
});
