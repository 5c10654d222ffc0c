import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBackupCopy } from '../../crypto/backup-copy';
import { createBackupKey, sealDekCopy } from '../../crypto/backup-key';
import { generateDek } from '../../crypto/dek-keyring';
import { openBackupKeyPerDocs, openDekCopyPerDocs, recoverDeksPerDocs } from '../support/backup-key-format';
import { newSecret } from '../support/secrets';

/** docs/formats.md §5: what keyward writes, read by the reader in test/support/backup-key-format.ts. */
describe('an independent reader of KWK1 and KWD1, written from docs/formats.md', () => {
  const password = newSecret('backup-password');

  it('uses nothing of keyward: only Node’s crypto and the argon2 library', () => {
    const importsOf = (file: string) => [...readFileSync(join(__dirname, '../support', file), 'utf8').matchAll(/from '([^']+)'|require\('([^']+)'\)/g)].map((m) => m[1] ?? m[2]);
    expect(importsOf('backup-key-format.ts').sort()).toEqual(['./argon2-per-docs', 'node:crypto']);
    expect(importsOf('argon2-per-docs.ts')).toEqual(['argon2']);
  });

  it('recovers every live DEK of a keyset from the rows with the password, KWD1 and KWB1 alike', async () => {
    const { record, publicKey } = await createBackupKey(password);
    const keyset = [generateDek(), generateDek(), generateDek()];
    const legacy = generateDek();
    const rows = [...keyset.map((dek) => ({ dekKeyId: dek.keyId, backupCopy: sealDekCopy(dek, publicKey) })), { dekKeyId: legacy.keyId, backupCopy: await createBackupCopy(legacy, password) }];
    const recovered = await recoverDeksPerDocs(record, rows, password);
    expect(recovered).toEqual(new Map([...keyset, legacy].map((dek) => [dek.keyId, dek.key])));
    expect((await openBackupKeyPerDocs(record, password)).publicKey).toEqual(publicKey);
  });

  it('agrees with keyward on what cannot be opened: a wrong password, a copy sealed to another backup key', async () => {
    const mine = await createBackupKey(password);
    const other = await createBackupKey(newSecret('other-password'));
    await expect(openBackupKeyPerDocs(mine.record, newSecret('wrong-password'))).rejects.toThrow('wrong password');
    const opened = await openBackupKeyPerDocs(mine.record, password);
    expect(() => openDekCopyPerDocs(sealDekCopy(generateDek(), other.publicKey), opened)).toThrow('sealed to another backup key');
  });
});
