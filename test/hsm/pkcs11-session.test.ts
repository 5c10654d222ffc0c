import { writeFileSync } from 'node:fs';
import { KeyCustodyError } from '../../errors/key-custody-error';
import { Pkcs11KeyWrapper } from '../../hsm/pkcs11-key-wrapper';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { Pkcs11Token } from '../../hsm/pkcs11-token';
import { SoftHsm, SoftHsmToken, SOFTHSM_MODULE } from '../support/softhsm';

/**
 * Issue 13 item 4: one logged-in session per token and process, instead of C_Login per operation;
 * re-opened when the token closed it or logged it out, dropped by a module refresh, and never used
 * with another PIN source or a changed PIN.
 */
describe('the kept PKCS#11 session', () => {
  let hsm: SoftHsm;
  let token: SoftHsmToken;
  let module: Pkcs11Module;
  let logins: jest.SpyInstance;

  beforeAll(() => {
    hsm = new SoftHsm('session');
    token = hsm.initToken('KeywardSession');
    module = Pkcs11Module.open(SOFTHSM_MODULE);
    module.refresh();
    new Pkcs11Token(token.config).ensureKek();
  });

  beforeEach(() => {
    module.refresh();
    logins = jest.spyOn(module.api, 'C_Login');
  });

  afterEach(() => jest.restoreAllMocks());

  async function roundTrip(wrapper: Pkcs11KeyWrapper): Promise<void> {
    const dek = Buffer.alloc(32, 7);
    expect(await wrapper.unwrap(await wrapper.wrap(dek))).toEqual(dek);
  }

  it('logs in once for many operations, by any token object of the same configuration', async () => {
    await roundTrip(new Pkcs11KeyWrapper(new Pkcs11Token(token.config)));
    for (let i = 0; i < 5; i++)
      await new Pkcs11KeyWrapper(new Pkcs11Token({ ...token.config, pin: { file: token.pinFile } })).unwrap(await new Pkcs11KeyWrapper(new Pkcs11Token(token.config)).wrap(Buffer.alloc(32, i)));
    expect(logins).toHaveBeenCalledTimes(1);
  });

  it('logs in again after a module refresh, which closes every session', async () => {
    const wrapper = new Pkcs11KeyWrapper(new Pkcs11Token(token.config));
    await roundTrip(wrapper);
    module.refresh();
    await roundTrip(wrapper);
    expect(logins).toHaveBeenCalledTimes(2);
  });

  it('opens a fresh session when the token closed the kept one or logged it out', async () => {
    const wrapper = new Pkcs11KeyWrapper(new Pkcs11Token(token.config));
    await roundTrip(wrapper);
    const kept = module.sessions.get(token.label)!;
    module.api.C_CloseAllSessions(kept.slot);
    await roundTrip(wrapper);
    expect(logins).toHaveBeenCalledTimes(2);
    module.api.C_Logout(module.sessions.get(token.label)!.session);
    // Logged out, the session would see no private object: the KEK would look missing.
    expect((await wrapper.keyId()).label).toBe('trustpoint-kek');
    expect(logins).toHaveBeenCalledTimes(3);
  });

  it('never lets another PIN source, or a changed PIN, use a session logged in with the right PIN', async () => {
    const wrapper = new Pkcs11KeyWrapper(new Pkcs11Token(token.config));
    await roundTrip(wrapper);
    process.env.KW_TEST_SESSION_WRONG_PIN = 'not-the-pin-1234';
    try {
      const other = new Pkcs11KeyWrapper(new Pkcs11Token({ ...token.config, pin: { env: 'KW_TEST_SESSION_WRONG_PIN' } }));
      await expect(other.keyId()).rejects.toMatchObject({ code: 'WRONG_PIN' });
    } finally {
      delete process.env.KW_TEST_SESSION_WRONG_PIN;
    }
    await roundTrip(wrapper);
    // The same source, its PIN file rewritten with a wrong PIN: the PIN is checked again.
    writeFileSync(token.pinFile, 'not-the-pin-5678\n');
    try {
      await expect(wrapper.keyId()).rejects.toBeInstanceOf(KeyCustodyError);
      await expect(wrapper.keyId()).rejects.toMatchObject({ code: 'WRONG_PIN' });
    } finally {
      writeFileSync(token.pinFile, `${token.pin}\n`);
    }
    await roundTrip(wrapper);
  });

  it('keeps one session per token: two tokens in one process each log in once', async () => {
    const second = hsm.initToken('KeywardSession2');
    module.refresh();
    new Pkcs11Token(second.config).ensureKek();
    module.refresh();
    const a = new Pkcs11KeyWrapper(new Pkcs11Token(token.config));
    const b = new Pkcs11KeyWrapper(new Pkcs11Token(second.config));
    logins.mockClear();
    for (let i = 0; i < 3; i++) {
      await roundTrip(a);
      await roundTrip(b);
    }
    expect(logins).toHaveBeenCalledTimes(2);
  });
});
