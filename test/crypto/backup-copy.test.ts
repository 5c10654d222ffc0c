import { createHash } from 'node:crypto';
import { BACKUP_COPY_LENGTH, createBackupCopy, DEFAULT_KDF_CEILING, openBackupCopy, readBackupCopyParams } from '../../crypto/backup-copy';
import { generateDek } from '../../crypto/dek-keyring';
import { KeyCustodyError } from '../../errors/key-custody-error';
import { openKwb1PerDocs } from '../support/backup-key-format';
import { newSecret } from '../support/secrets';

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  await expect(promise).rejects.toBeInstanceOf(KeyCustodyError);
  await expect(promise).rejects.toMatchObject({ code });
}

function rechecksum(copy: Buffer): Buffer {
  const out = Buffer.from(copy);
  createHash('sha256').update(out.subarray(0, 115)).digest().copy(out, 115, 0, 8);
  return out;
}

describe('the backup copy of the DEK', () => {
  const password = newSecret('backup-password');
  const dek = generateDek();
  let copy: Buffer;

  beforeAll(async () => {
    copy = await createBackupCopy(dek, password);
  });

  it('is decrypted by an independent implementation that follows docs/formats.md', async () => {
    expect(copy).toHaveLength(BACKUP_COPY_LENGTH);
    const opened = await openKwb1PerDocs(copy, password);
    expect(opened.keyId).toBe(dek.keyId);
    expect(opened.dek).toEqual(dek.key);
  });

  it('uses Argon2id with at least 64 MiB and t=3, a fresh salt each time', async () => {
    expect(readBackupCopyParams(copy)).toEqual({ memoryKiB: 65536, iterations: 3, parallelism: 1, keyId: dek.keyId });
    const again = await createBackupCopy(dek, password);
    expect(again.subarray(15, 31)).not.toEqual(copy.subarray(15, 31));
  });

  it('opens with the right password', async () => {
    expect(await openBackupCopy(copy, password)).toEqual({ keyId: dek.keyId, key: dek.key });
  });

  it('says a wrong password is wrong, and that error names no secret', async () => {
    const wrong = newSecret('wrong-password');
    const attempt = openBackupCopy(copy, wrong);
    await expectCode(attempt, 'WRONG_BACKUP_PASSWORD');
    const message = await attempt.catch((e: Error) => e.message);
    expect(message).not.toContain(wrong);
  });

  it('reports every flipped byte as damage, before running the KDF', async () => {
    for (let i = 0; i < copy.length; i++) {
      const flipped = Buffer.from(copy);
      flipped[i]! ^= 0x01;
      await expectCode(openBackupCopy(flipped, password), 'BACKUP_COPY_CORRUPT');
    }
    await expectCode(openBackupCopy(copy.subarray(0, 100), password), 'BACKUP_COPY_CORRUPT');
  });

  it('catches a forged ciphertext with a recomputed checksum through the GCM tag', async () => {
    const forged = Buffer.from(copy);
    forged[70]! ^= 0x01;
    await expectCode(openBackupCopy(rechecksum(forged), password), 'BACKUP_COPY_CORRUPT');
  });

  it('refuses parameters lowered below the floor, even with a valid checksum', async () => {
    const weak = Buffer.from(copy);
    weak.writeUInt32BE(1024, 6);
    await expectCode(openBackupCopy(rechecksum(weak), password), 'WEAK_KDF_PARAMETERS');
    await expect(createBackupCopy(dek, password, { memoryKiB: 1024, iterations: 1, parallelism: 1 })).rejects.toMatchObject({ code: 'WEAK_KDF_PARAMETERS' });
  });

  it('refuses parameters raised above the ceiling (a forged key_material row) before Argon2id runs', async () => {
    const bomb = Buffer.from(copy);
    bomb.writeUInt32BE(4 * 1024 * 1024, 6);
    bomb.writeUInt32BE(64, 10);
    bomb[14] = 64;
    const started = Date.now();
    await expectCode(openBackupCopy(rechecksum(bomb), password), 'WEAK_KDF_PARAMETERS');
    await expect(openBackupCopy(rechecksum(bomb), password)).rejects.toThrow(/exceed this keyward's ceiling \(m ≤ 262144 KiB, t ≤ 12, p ≤ 4\)/);
    expect(Date.now() - started).toBeLessThan(1000);
    // Just above the default ceiling: refused, unless the reader's configuration raised it.
    const strong = { memoryKiB: 65536, iterations: DEFAULT_KDF_CEILING.iterations + 1, parallelism: 1 };
    const raised = { ...DEFAULT_KDF_CEILING, iterations: strong.iterations };
    await expectCode(createBackupCopy(dek, password, strong), 'WEAK_KDF_PARAMETERS');
    const stronger = await createBackupCopy(dek, password, strong, raised);
    await expectCode(openBackupCopy(stronger, password), 'WEAK_KDF_PARAMETERS');
    expect(await openBackupCopy(stronger, password, raised)).toEqual({ keyId: dek.keyId, key: dek.key });
  });
});
