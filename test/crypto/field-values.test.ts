import { createCipheriv, randomBytes } from 'node:crypto';
import { DekKeyring, GCM_ENCRYPTION_LIMIT, generateDek } from '../../crypto/dek-keyring';
import { KeyCustodyError } from '../../errors/key-custody-error';
import { EncryptedFieldCodec, FieldCodec, PlaintextFieldCodec } from '../../crypto/field-codec';
import { decryptPerDocs } from '../support/field-format';

const EST = { table: 'devices', column: 'est_password' };
const CMP = { table: 'devices', column: 'cmp_shared_secret' };

function codecWithDek() {
  const keyring = new DekKeyring();
  const dek = generateDek();
  keyring.install(dek);
  return { keyring, dek, codec: new EncryptedFieldCodec(keyring) };
}

/** Trustpoint's writer (util/encrypted_fields.py), again with Node's crypto alone. */
function encryptTrustpoint(value: string, dek: Buffer): string {
  const nonce = randomBytes(12);
  const n = randomBytes(1)[0]! % 16;
  const padded = Buffer.concat([Buffer.from(value, 'utf8'), Buffer.alloc(n), Buffer.from([n])]);
  const cipher = createCipheriv('aes-256-gcm', dek, nonce);
  const ciphertext = Buffer.concat([cipher.update(padded), cipher.final()]);
  return Buffer.concat([nonce, cipher.getAuthTag(), ciphertext]).toString('base64');
}

function expectCode(fn: () => unknown, code: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(KeyCustodyError);
  expect((caught as KeyCustodyError).code).toBe(code);
}

describe('secret field values', () => {
  it('are decrypted by an independent implementation that follows docs/formats.md', () => {
    const { dek, codec } = codecWithDek();
    for (const value of ['est-secret', '', 'ü-ñ-✓ multi-byte', 'x'.repeat(5000)]) {
      const stored = codec.seal(value, EST);
      const read = decryptPerDocs(stored, dek.key, 'devices', 'est_password');
      expect(read.version).toBe(1);
      expect(read.keyId).toBe(dek.keyId);
      expect(read.value).toBe(value);
      expect(read.padding).toBeGreaterThanOrEqual(0);
      expect(read.padding).toBeLessThanOrEqual(15);
      expect(codec.open(stored, EST)).toBe(value);
    }
  });

  it('differ for equal plaintexts and vary in length (random nonce and padding)', () => {
    const { codec } = codecWithDek();
    const values = Array.from({ length: 64 }, () => codec.seal('same-secret', EST));
    expect(new Set(values.map((v) => v.toString('hex'))).size).toBe(64);
    expect(new Set(values.map((v) => v.length)).size).toBeGreaterThan(1);
  });

  it('reject every flipped byte of the stored value', () => {
    const { codec } = codecWithDek();
    const stored = codec.seal('flip-me-secret', EST);
    for (let i = 0; i < stored.length; i++) {
      for (const mask of [0x01, 0x20, 0x80]) {
        const flipped = Buffer.from(stored);
        flipped[i]! ^= mask;
        let error: unknown;
        try {
          codec.open(flipped, EST);
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(KeyCustodyError);
        expect(['FIELD_CORRUPT', 'FIELD_FORMAT_UNKNOWN', 'DEK_UNAVAILABLE']).toContain((error as KeyCustodyError).code);
      }
    }
  });

  it('fail to decrypt when moved to another column', () => {
    const { codec } = codecWithDek();
    const stored = codec.seal('column-bound-secret', EST);
    expectCode(() => codec.open(stored, CMP), 'FIELD_CORRUPT');
    expectCode(() => codec.open(stored, { table: 'credentials', column: 'est_password' }), 'FIELD_CORRUPT');
  });

  it("read Trustpoint's legacy format, made independently", () => {
    const { dek, codec } = codecWithDek();
    for (const value of ['legacy-est-password', 'a', 'ü-legacy']) {
      const legacy = encryptTrustpoint(value, dek.key);
      expect(codec.open(legacy, EST)).toBe(value); // as text, straight from Trustpoint's table
      expect(codec.open(Buffer.from(legacy, 'ascii'), EST)).toBe(value); // as imported into a binary column
    }
    const legacy = encryptTrustpoint('legacy-tampered', dek.key);
    const raw = Buffer.from(legacy, 'base64');
    raw[raw.length - 1]! ^= 1;
    expectCode(() => codec.open(raw.toString('base64'), EST), 'FIELD_CORRUPT');
  });

  it('name a newer format and a locked hierarchy clearly', () => {
    const { codec } = codecWithDek();
    expectCode(() => codec.open(Buffer.from([2, ...Buffer.alloc(60)]), EST), 'FIELD_FORMAT_UNKNOWN');
    const locked = new EncryptedFieldCodec(new DekKeyring());
    expectCode(() => locked.seal('x-secret', EST), 'DEK_UNAVAILABLE');
    const stored = codec.seal('x-secret', EST);
    expectCode(() => locked.open(stored, EST), 'DEK_UNAVAILABLE');
  });

  it('open values of an older DEK that is still in the keyring (row-by-row rotation)', () => {
    const { keyring, codec } = codecWithDek();
    const old = codec.seal('before-rotation', EST);
    const next = generateDek();
    keyring.install(next);
    const fresh = codec.seal('after-rotation', EST);
    expect(fresh.subarray(1, 9).toString('hex')).toBe(next.keyId);
    expect(codec.open(old, EST)).toBe('before-rotation');
    expect(codec.open(fresh, EST)).toBe('after-rotation');
  });

  it('count GCM encryptions per DEK and stop at the NIST limit', () => {
    const { keyring, dek, codec } = codecWithDek();
    codec.seal('one', EST);
    codec.seal('two', EST);
    expect(keyring.encryptions(dek.keyId)).toBe(2);
    keyring.install(dek, GCM_ENCRYPTION_LIMIT);
    expectCode(() => codec.seal('three', EST), 'DEK_USAGE_EXHAUSTED');
  });

  it('clear the keyring, overwriting the key bytes', () => {
    const { keyring, dek, codec } = codecWithDek();
    const held = keyring.key(dek.keyId);
    codec.seal('before-clear', EST);
    keyring.clear();
    expect(held.equals(Buffer.alloc(32))).toBe(true);
    expectCode(() => codec.seal('after-clear', EST), 'DEK_UNAVAILABLE');
  });

  it('stay plaintext under software storage', () => {
    const codec: FieldCodec = new PlaintextFieldCodec();
    expect(codec.encrypts).toBe(false);
    expect(codec.seal('visible', EST)).toEqual(Buffer.from('visible'));
    expect(codec.open(Buffer.from('visible'), EST)).toBe('visible');
  });
});
