import type { WrappingKeyId } from '../../hsm/key-wrapper';
import { Pkcs11KeyWrapper } from '../../hsm/pkcs11-key-wrapper';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { Pkcs11Token } from '../../hsm/pkcs11-token';
import { SoftHsm, SoftHsmToken, SOFTHSM_MODULE } from '../support/softhsm';
import { expectCode } from '../support/expect-code';

/**
 * The token side of a KEK rotation (design.md §5a): two KEKs under one label, told apart by CKA_ID.
 * openCryptoki's CBC-PAD case is in wrap-mechanisms.test.ts: a jest worker that loads openCryptoki
 * again after another file finalized it may crash, so one file per worker run holds its tests.
 */
jest.setTimeout(60_000);

/** The secret keys pkcs11-tool, an independent client, sees on the token: label and CKA_ID of each. */
function secretKeysSeenByTool(hsm: SoftHsm, token: SoftHsmToken): Array<{ label: string; id: string }> {
  const listing = hsm.tool(['--token-label', token.label, '--login', '--pin', 'env:KW_TEST_PIN', '--list-objects', '--type', 'secrkey'], { ...hsm.env, KW_TEST_PIN: token.pin });
  return listing
    .split(/^Secret Key Object/m)
    .slice(1)
    .map((object) => ({ label: /label:\s+(\S+)/.exec(object)?.[1] ?? '', id: /ID:\s+([0-9a-f]+)/.exec(object)?.[1] ?? '' }));
}

const DEK_OLD = Buffer.alloc(32, 0x11);
const DEK_NEW = Buffer.alloc(32, 0x22);

describe('two KEKs under one label in a real SoftHSM2 token', () => {
  let hsm: SoftHsm;
  let token: SoftHsmToken;
  let pkcs11: Pkcs11Token;
  let oldKek: WrappingKeyId;
  let newKek: WrappingKeyId;
  let unrelated: WrappingKeyId;

  beforeAll(() => {
    hsm = new SoftHsm('kek-rotation');
    token = hsm.initToken('KeywardRotation');
    Pkcs11Module.open(SOFTHSM_MODULE).refresh();
    pkcs11 = new Pkcs11Token(token.config);
    oldKek = pkcs11.generateKek();
    // Another application's key beside the KEKs: a rotation must never touch it.
    unrelated = new Pkcs11Token({ ...token.config, kekLabel: 'unrelated-key' }).generateKek();
  });

  it('generates a second KEK with the same label and a new CKA_ID; generateKek still refuses', async () => {
    await expectCode(() => pkcs11.generateKek(), 'KEK_EXISTS');
    newKek = pkcs11.generateAdditionalKek();
    expect(newKek.label).toBe(oldKek.label);
    expect(newKek.id).toMatch(/^[0-9a-f]{32}$/);
    expect(newKek.id).not.toBe(oldKek.id);
    expect(pkcs11.listKeks()).toEqual(expect.arrayContaining([oldKek, newKek]));
    expect(pkcs11.listKeks()).toHaveLength(2);
    const seen = secretKeysSeenByTool(hsm, token).filter((k) => k.label === 'trustpoint-kek');
    expect(seen.map((k) => k.id).sort()).toEqual([oldKek.id, newKek.id].sort());
  });

  it('refuses every lookup without an id while two exist, naming both CKA_IDs', async () => {
    const ambiguous = await expectCode(() => pkcs11.findKekId(), 'KEK_AMBIGUOUS');
    expect(ambiguous.message).toContain(oldKek.id);
    expect(ambiguous.message).toContain(newKek.id);
    await expectCode(new Pkcs11KeyWrapper(pkcs11).keyId(), 'KEK_AMBIGUOUS');
    await expectCode(new Pkcs11KeyWrapper(pkcs11).wrap(DEK_OLD), 'KEK_AMBIGUOUS');
    expect(await pkcs11.probe({ scans: 1, intervalMs: 0 })).toEqual({ moduleLoaded: true, tokenPresent: true, kek: null, problem: 'KEK_AMBIGUOUS' });
  });

  it('finds each KEK by its CKA_ID; an id no key carries is a replaced KEK, a label no key carries a missing one', async () => {
    expect(pkcs11.findKekId(oldKek.id)).toEqual(oldKek);
    expect(pkcs11.findKekId(newKek.id.toUpperCase())).toEqual(newKek);
    expect(pkcs11.findKekId('00'.repeat(16))).toBeNull();
    expect((await pkcs11.probe({ scans: 1, intervalMs: 0 }, newKek.id)).kek).toEqual(newKek);
    expect(await pkcs11.probe({ scans: 1, intervalMs: 0 }, '00'.repeat(16))).toEqual({ moduleLoaded: true, tokenPresent: true, kek: null });
    await expectCode(new Pkcs11KeyWrapper(pkcs11, { kekId: '00'.repeat(16) }).keyId(), 'KEK_REPLACED');
    await expectCode(new Pkcs11KeyWrapper(new Pkcs11Token({ ...token.config, kekLabel: 'no-such-kek' }), { kekId: oldKek.id }).keyId(), 'KEK_MISSING');
  });

  it('wraps under the chosen KEK; each blob unwraps with its own KEK and not with the other', async () => {
    const underOld = new Pkcs11KeyWrapper(pkcs11, { kekId: oldKek.id });
    const underNew = new Pkcs11KeyWrapper(pkcs11, { kekId: newKek.id });
    expect(await underOld.keyId()).toEqual(oldKek);
    expect(await underNew.keyId()).toEqual(newKek);
    const wrappedOld = await underOld.wrap(DEK_OLD);
    const wrappedNew = await underNew.wrap(DEK_NEW);
    expect(wrappedOld.kek).toEqual(oldKek);
    expect(wrappedNew.kek).toEqual(newKek);

    // unwrap follows the blob's CKA_ID, whichever KEK the wrapper writes with.
    for (const wrapper of [underOld, underNew, new Pkcs11KeyWrapper(pkcs11)]) {
      expect(await wrapper.unwrap(wrappedOld)).toEqual(DEK_OLD);
      expect(await wrapper.unwrap(wrappedNew)).toEqual(DEK_NEW);
    }
    // A blob made to name the other KEK fails RFC 3394's integrity check under it, and the error says under which.
    const swapped = await expectCode(underOld.unwrap({ ...wrappedNew, kek: oldKek }), 'WRAPPED_BLOB_CORRUPT');
    expect(swapped.message).toContain(`under the KEK with CKA_ID ${oldKek.id}`);
    const swappedBack = await expectCode(underNew.unwrap({ ...wrappedOld, kek: newKek }), 'WRAPPED_BLOB_CORRUPT');
    expect(swappedBack.message).toContain(`under the KEK with CKA_ID ${newKek.id}`);
  });

  it('destroyKeksExcept(new) leaves exactly the new KEK (pkcs11-tool agrees) and never a key with another label', async () => {
    const wrappedNew = await new Pkcs11KeyWrapper(pkcs11, { kekId: newKek.id }).wrap(DEK_NEW);
    const wrappedOld = await new Pkcs11KeyWrapper(pkcs11, { kekId: oldKek.id }).wrap(DEK_OLD);
    await expectCode(() => pkcs11.destroyKeksExcept({ ...newKek, id: '00'.repeat(16) }), 'KEK_MISSING');
    expect(pkcs11.listKeks()).toHaveLength(2);

    expect(pkcs11.destroyKeksExcept(newKek)).toEqual([oldKek]);
    expect(pkcs11.listKeks()).toEqual([newKek]);
    const seen = secretKeysSeenByTool(hsm, token);
    expect(seen.filter((k) => k.label === 'trustpoint-kek')).toEqual([{ label: 'trustpoint-kek', id: newKek.id }]);
    expect(seen).toContainEqual({ label: 'unrelated-key', id: unrelated.id });

    // One KEK again: the lookups without an id work as before, and the old wrap is a replaced KEK's.
    expect(pkcs11.findKekId()).toEqual(newKek);
    expect(await new Pkcs11KeyWrapper(pkcs11).unwrap(wrappedNew)).toEqual(DEK_NEW);
    await expectCode(new Pkcs11KeyWrapper(pkcs11).unwrap(wrappedOld), 'KEK_REPLACED');
    expect(pkcs11.destroyKeksExcept(newKek)).toEqual([]);
  });

  it('destroyKek removes the named KEK while several exist, and nothing for an id no key carries', () => {
    const third = pkcs11.generateAdditionalKek();
    pkcs11.destroyKek({ ...third, id: '00'.repeat(16) });
    expect(pkcs11.listKeks()).toHaveLength(2);
    pkcs11.destroyKek(newKek);
    expect(pkcs11.listKeks()).toEqual([third]);
    pkcs11.destroyKek(third);
    expect(pkcs11.listKeks()).toEqual([]);
    expect(secretKeysSeenByTool(hsm, token)).toEqual([{ label: 'unrelated-key', id: unrelated.id }]);
  });
});
