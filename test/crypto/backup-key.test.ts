import { createHash, generateKeyPairSync } from 'node:crypto';
import { createBackupCopy } from '../../crypto/backup-copy';
import {
  BACKUP_KEY_RECORD_LENGTH,
  backupCopyFormat,
  backupKeyFingerprint,
  BackupPrivateKey,
  createBackupKey,
  DEK_COPY_LENGTH,
  openBackupKey,
  openDekCopy,
  readBackupKeyRecord,
  readDekCopy,
  sealDekCopy,
} from '../../crypto/backup-key';
import { generateDek } from '../../crypto/dek-keyring';
import { DEFAULT_KDF_CEILING, MINIMUM_KDF } from '../../crypto/kdf-params';
import { sealWithPassword } from '../../crypto/password-record';
import { KeyCustodyError } from '../../errors/key-custody-error';
import { newSecret } from '../support/secrets';

/** KWK1 regions (docs/formats.md §5.1) and KWD1 regions (§5.2): [first byte, end]. */
const KWK1_REGIONS = {
  magic: [0, 4],
  kdf: [4, 6],
  params: [6, 15],
  salt: [15, 31],
  publicKey: [31, 63],
  verifier: [63, 79],
  nonce: [79, 91],
  ciphertext: [91, 123],
  tag: [123, 139],
  checksum: [139, 147],
} as const;
const KWD1_REGIONS = { magic: [0, 4], keyId: [4, 12], recipient: [12, 20], ephemeral: [20, 52], nonce: [52, 64], ciphertext: [64, 96], tag: [96, 112], checksum: [112, 120] } as const;

function expectTiling(regions: Record<string, readonly [number, number]>, length: number): void {
  const spans = Object.values(regions);
  expect(spans.map(([start], i) => start === (i === 0 ? 0 : spans[i - 1]![1]))).not.toContain(false);
  expect(spans.at(-1)![1]).toBe(length);
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<KeyCustodyError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KeyCustodyError);
  expect((error as KeyCustodyError).code).toBe(code);
  return error as KeyCustodyError;
}

const refused = (fn: () => unknown, code: string) => expectCode(Promise.resolve().then(fn), code);

/** The value with its trailing 8-byte checksum made right again, as a forger would. */
function rechecksum(value: Buffer): Buffer {
  const out = Buffer.from(value);
  createHash('sha256')
    .update(out.subarray(0, out.length - 8))
    .digest()
    .copy(out, out.length - 8, 0, 8);
  return out;
}

function flip(value: Buffer, at: number, withChecksum = false): Buffer {
  const out = Buffer.from(value);
  out[at]! ^= 0x01;
  return withChecksum ? rechecksum(out) : out;
}

describe('the backup key (KWK1) and the DEK copies sealed to it (KWD1)', () => {
  const password = newSecret('backup-password');
  let record: Buffer;
  let publicKey: Buffer;
  let opened: BackupPrivateKey;
  const deks = [generateDek(), generateDek(), generateDek()];
  let copies: Buffer[];

  beforeAll(async () => {
    ({ record, publicKey } = await createBackupKey(password));
    copies = deks.map((dek) => sealDekCopy(dek, publicKey));
    opened = await openBackupKey(record, password);
  });

  afterAll(() => opened.wipe());

  it('round-trips: the password opens the key, the key opens every copy sealed without the password', () => {
    // The regions the tests below flip tile both formats, as docs/formats.md §5 lays them out.
    expectTiling(KWK1_REGIONS, BACKUP_KEY_RECORD_LENGTH);
    expectTiling(KWD1_REGIONS, DEK_COPY_LENGTH);
    expect(record).toHaveLength(BACKUP_KEY_RECORD_LENGTH);
    expect(BACKUP_KEY_RECORD_LENGTH).toBe(147);
    expect(readBackupKeyRecord(record)).toEqual({ params: { memoryKiB: 65536, iterations: 3, parallelism: 1 }, publicKey, fingerprint: backupKeyFingerprint(publicKey) });
    expect(opened.publicKey).toEqual(publicKey);
    expect(opened.fingerprint).toBe(createHash('sha256').update(publicKey).digest().toString('hex', 0, 8));
    for (const [i, copy] of copies.entries()) {
      expect(copy).toHaveLength(DEK_COPY_LENGTH);
      expect(DEK_COPY_LENGTH).toBe(120);
      expect(readDekCopy(copy)).toEqual({ keyId: deks[i]!.keyId, recipient: opened.fingerprint });
      expect(openDekCopy(copy, opened)).toEqual(deks[i]);
    }
    // A fresh ephemeral key per copy, even for the same DEK.
    const again = sealDekCopy(deks[0]!, publicKey);
    const ephemerals = [...copies, again].map((c) => c.toString('hex', 20, 52));
    expect(new Set(ephemerals).size).toBe(4);
    expect(openDekCopy(again, opened)).toEqual(deks[0]);
  });

  it('tells the three formats apart by their magic', async () => {
    expect(backupCopyFormat(record)).toBe('KWK1');
    expect(backupCopyFormat(copies[0]!)).toBe('KWD1');
    expect(backupCopyFormat(await createBackupCopy(deks[0]!, password))).toBe('KWB1');
    expect(backupCopyFormat(Buffer.from('KWA1 and more'))).toBeNull();
    expect(backupCopyFormat(Buffer.from('KW'))).toBeNull();
  });

  it('says a wrong password is wrong, and that error names no secret', async () => {
    const wrong = newSecret('wrong-password');
    const error = await expectCode(openBackupKey(record, wrong), 'WRONG_BACKUP_PASSWORD');
    expect(error.message).not.toContain(wrong);
    expect(error.message).not.toContain(password);
  });

  it('refuses a flipped byte anywhere in the record as damage, from the checksum, before the KDF', async () => {
    const started = Date.now();
    for (let i = 0; i < record.length; i++) await expectCode(openBackupKey(flip(record, i), password), 'BACKUP_COPY_CORRUPT');
    await expectCode(openBackupKey(record.subarray(0, 146), password), 'BACKUP_COPY_CORRUPT');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('catches a forged record whose checksum was recomputed: the tag covers the header, the key and its nonce', async () => {
    for (const region of ['publicKey', 'nonce', 'ciphertext', 'tag'] as const) {
      const [start, end] = KWK1_REGIONS[region];
      for (const at of [start, end - 1]) await expectCode(openBackupKey(flip(record, at, true), password), 'BACKUP_COPY_CORRUPT');
    }
    // A changed salt or verifier makes the password look wrong: that is all a verifier can say.
    await expectCode(openBackupKey(flip(record, KWK1_REGIONS.salt[0], true), password), 'WRONG_BACKUP_PASSWORD');
    await expectCode(openBackupKey(flip(record, KWK1_REGIONS.verifier[0], true), password), 'WRONG_BACKUP_PASSWORD');
    // Another KDF or Argon2 version byte is refused before any derivation.
    await expectCode(openBackupKey(flip(record, 4, true), password), 'BACKUP_COPY_CORRUPT');
    await expectCode(openBackupKey(flip(record, 5, true), password), 'BACKUP_COPY_CORRUPT');
  });

  it('refuses a record whose private key is not the one of its public key, even when the password opens it', async () => {
    const [own, other] = [generateKeyPairSync('x25519'), generateKeyPairSync('x25519')];
    const privateKey = own.privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(16);
    const otherPublic = other.publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
    // What a writer with the password could store: KWK1 with a public key that is not its private key's.
    const kwk1 = { magic: 'KWK1', name: 'a forged record', purpose: 'keyward/backup-key/v1', labelLength: 32 };
    const forged = await sealWithPassword(kwk1, privateKey, otherPublic, password, MINIMUM_KDF, DEFAULT_KDF_CEILING);
    expect(readBackupKeyRecord(forged).publicKey).toEqual(otherPublic);
    const error = await expectCode(openBackupKey(forged, password), 'BACKUP_COPY_CORRUPT');
    expect(error.message).toContain(backupKeyFingerprint(otherPublic));
    expect(error.message).toMatch(/does not belong to its public key/);
  });

  it('refuses parameters over the ceiling or under the floor before Argon2id runs', async () => {
    const bomb = Buffer.from(record);
    bomb.writeUInt32BE(4 * 1024 * 1024, 6);
    bomb.writeUInt32BE(64, 10);
    bomb[14] = 64;
    const rechecked = rechecksum(bomb);
    const started = Date.now();
    const error = await expectCode(openBackupKey(rechecked, password), 'WEAK_KDF_PARAMETERS');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(error.message).toMatch(/exceed this keyward's ceiling \(m ≤ 262144 KiB, t ≤ 12, p ≤ 4\)/);
    const weak = Buffer.from(record);
    weak.writeUInt32BE(1024, 6);
    await expectCode(openBackupKey(rechecksum(weak), password), 'WEAK_KDF_PARAMETERS');
    await expectCode(createBackupKey(password, { memoryKiB: 1024, iterations: 1, parallelism: 1 }), 'WEAK_KDF_PARAMETERS');
    await expectCode(createBackupKey(password, { ...DEFAULT_KDF_CEILING, iterations: DEFAULT_KDF_CEILING.iterations + 1 }), 'WEAK_KDF_PARAMETERS');
  });

  it('refuses a flipped byte anywhere in a sealed copy as damage', async () => {
    for (let i = 0; i < copies[0]!.length; i++) await refused(() => openDekCopy(flip(copies[0]!, i), opened), 'BACKUP_COPY_CORRUPT');
    await refused(() => openDekCopy(copies[0]!.subarray(0, 112), opened), 'BACKUP_COPY_CORRUPT');
    // With the checksum made right again: the magic is checked, the GCM tag catches every other region.
    for (const region of ['magic', 'keyId', 'ephemeral', 'nonce', 'ciphertext', 'tag'] as const) {
      const [start, end] = KWD1_REGIONS[region];
      for (const at of [start, end - 1]) await refused(() => openDekCopy(flip(copies[0]!, at, true), opened), 'BACKUP_COPY_CORRUPT');
    }
    // A low-order ephemeral key (all zeros) gives an all-zero shared secret: refused, not used.
    const lowOrder = Buffer.from(copies[0]!);
    lowOrder.fill(0, 20, 52);
    await refused(() => openDekCopy(rechecksum(lowOrder), opened), 'BACKUP_COPY_CORRUPT');
  });

  it('refuses a copy sealed to another backup key, naming fingerprints and no key', async () => {
    const other = await createBackupKey(newSecret('other-password'));
    const foreign = sealDekCopy(deks[1]!, other.publicKey);
    const error = await refused(() => openDekCopy(foreign, opened), 'BACKUP_KEY_MISMATCH');
    expect(error.message).toBe(
      `the backup copy of DEK ${deks[1]!.keyId} is sealed to backup key ${backupKeyFingerprint(other.publicKey)}, not to backup key ${opened.fingerprint} that this password opens`,
    );
    for (const secret of [other.publicKey, publicKey, deks[1]!.key]) {
      expect(error.message).not.toContain(secret.toString('hex'));
      expect(error.message).not.toContain(secret.toString('base64'));
    }
    // A copy whose recipient field was changed (checksum recomputed) names another key, and is refused as such.
    await refused(() => openDekCopy(flip(copies[0]!, KWD1_REGIONS.recipient[0], true), opened), 'BACKUP_KEY_MISMATCH');
  });

  it('is unusable once wiped', async () => {
    const key = await openBackupKey(record, password);
    expect(openDekCopy(copies[2]!, key)).toEqual(deks[2]);
    key.wipe();
    expect(() => openDekCopy(copies[2]!, key)).toThrow('the backup key has been wiped');
  });

  it('refuses bad input to the writers', () => {
    expect(() => sealDekCopy({ keyId: 'not-hex', key: deks[0]!.key }, publicKey)).toThrow(RangeError);
    expect(() => sealDekCopy({ keyId: deks[0]!.keyId, key: Buffer.alloc(16) }, publicKey)).toThrow(RangeError);
    expect(() => sealDekCopy(deks[0]!, publicKey.subarray(0, 31))).toThrow(RangeError);
  });
});
