import { createDecipheriv, createHash, createPrivateKey, createPublicKey, diffieHellman, hkdfSync } from 'node:crypto';
import { argon2idFromHeader } from './argon2-per-docs';

/**
 * docs/formats.md §3 and §5, implemented again from the document with the argon2 library (./argon2-per-docs) and
 * Node's crypto only, not keyward's code: if this recovers the DEKs keyward stored, the document is precise
 * enough for another implementation. Plain Errors; it imports nothing of keyward.
 */

const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();
const fingerprint = (publicKey: Buffer) => sha256(publicKey).subarray(0, 8);

function checkSum(value: Buffer, length: number, magic: string): void {
  if (value.length !== length) throw new Error(`${magic}: ${value.length} bytes, not ${length}`);
  if (value.toString('ascii', 0, 4) !== magic) throw new Error(`not ${magic}`);
  if (
    !sha256(value.subarray(0, length - 8))
      .subarray(0, 8)
      .equals(value.subarray(length - 8))
  )
    throw new Error(`${magic}: checksum`);
}

function gcmOpen(key: Buffer, nonce: Buffer, ciphertext: Buffer, tag: Buffer, aad: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
}

/** §3 step 2–3 and §5.1 step 2–3: Argon2id over bytes 6..30 of the header, then the two HKDF subkeys. */
async function passwordKeys(record: Buffer, password: string, purpose: string): Promise<{ key: Buffer; verifier: Buffer }> {
  if (record[4] !== 2 || record[5] !== 0x13) throw new Error('not Argon2id 0x13');
  const root = await argon2idFromHeader(password, record, 6);
  return {
    key: Buffer.from(hkdfSync('sha256', root, Buffer.alloc(0), `${purpose}/encrypt`, 32)),
    verifier: Buffer.from(hkdfSync('sha256', root, Buffer.alloc(0), `${purpose}/verify`, 16)),
  };
}

/** §5.1: the backup key's private key d and public key P. */
export async function openBackupKeyPerDocs(record: Buffer, password: string): Promise<{ privateKey: Buffer; publicKey: Buffer }> {
  checkSum(record, 147, 'KWK1');
  const keys = await passwordKeys(record, password, 'keyward/backup-key/v1');
  if (!keys.verifier.equals(record.subarray(63, 79))) throw new Error('wrong password');
  const privateKey = gcmOpen(keys.key, record.subarray(79, 91), record.subarray(91, 123), record.subarray(123, 139), record.subarray(0, 63));
  const publicKey = record.subarray(31, 63);
  const derived = createPublicKey(createPrivateKey({ key: Buffer.concat([PKCS8_X25519, privateKey]), format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' });
  if (!derived.subarray(12).equals(publicKey)) throw new Error('the private key is not the public key’s');
  return { privateKey, publicKey: Buffer.from(publicKey) };
}

/** §5.2: the DEK of a KWD1 copy. */
export function openDekCopyPerDocs(copy: Buffer, backupKey: { privateKey: Buffer; publicKey: Buffer }): { keyId: string; dek: Buffer } {
  checkSum(copy, 120, 'KWD1');
  if (!copy.subarray(12, 20).equals(fingerprint(backupKey.publicKey))) throw new Error('sealed to another backup key');
  const ephemeral = copy.subarray(20, 52);
  const shared = diffieHellman({
    privateKey: createPrivateKey({ key: Buffer.concat([PKCS8_X25519, backupKey.privateKey]), format: 'der', type: 'pkcs8' }),
    publicKey: createPublicKey({ key: Buffer.concat([SPKI_X25519, ephemeral]), format: 'der', type: 'spki' }),
  });
  const key = Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeral, backupKey.publicKey]), 'keyward/dek-copy/v1', 32));
  const dek = gcmOpen(key, copy.subarray(52, 64), copy.subarray(64, 96), copy.subarray(96, 112), copy.subarray(0, 52));
  return { keyId: copy.toString('hex', 4, 12), dek };
}

/** §3: the DEK of a KWB1 copy. */
export async function openKwb1PerDocs(copy: Buffer, password: string): Promise<{ keyId: string; dek: Buffer }> {
  checkSum(copy, 123, 'KWB1');
  const keys = await passwordKeys(copy, password, 'keyward/dek-backup/v1');
  if (!keys.verifier.equals(copy.subarray(39, 55))) throw new Error('wrong password');
  return { keyId: copy.toString('hex', 31, 39), dek: gcmOpen(keys.key, copy.subarray(55, 67), copy.subarray(67, 99), copy.subarray(99, 115), copy.subarray(0, 39)) };
}

/** §5.3: every live DEK from the key_material rows, with the password; the backup key is opened once. */
export async function recoverDeksPerDocs(backupKeyRecord: Buffer | null, rows: { dekKeyId: string; backupCopy: Buffer }[], password: string): Promise<Map<string, Buffer>> {
  const backupKey = backupKeyRecord === null ? null : await openBackupKeyPerDocs(backupKeyRecord, password);
  const deks = new Map<string, Buffer>();
  for (const row of rows) {
    const magic = row.backupCopy.toString('ascii', 0, 4);
    let opened: { keyId: string; dek: Buffer };
    if (magic === 'KWD1' && backupKey !== null) opened = openDekCopyPerDocs(row.backupCopy, backupKey);
    else if (magic === 'KWB1') opened = await openKwb1PerDocs(row.backupCopy, password);
    else throw new Error(`row ${row.dekKeyId}: not a copy keyward wrote`);
    if (opened.keyId !== row.dekKeyId) throw new Error(`row ${row.dekKeyId} holds the copy of ${opened.keyId}`);
    deks.set(opened.keyId, opened.dek);
  }
  backupKey?.privateKey.fill(0);
  return deks;
}
