import { createDecipheriv, createHash, hkdfSync } from 'node:crypto';
import { BackupArchiveError } from '../../backup/archive-errors';
import { argon2idFromHeader } from '../support/argon2-per-docs';

/**
 * docs/backup-format.md, implemented again from the document with the argon2 library and Node's
 * crypto only, not keyward's code: if this reads the archives, the document is precise enough.
 */
export async function readPerDocs(file: Buffer, passphrase: string): Promise<{ writerVersion: string; entries: Map<string, Buffer> }> {
  expect(file.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x4b, 0x57, 0x41, 0x0d, 0x0a, 0x1a, 0x0a]));
  expect(file.readUInt16BE(8)).toBe(1);
  const headerLength = file.readUInt16BE(10);
  const header = file.subarray(0, headerLength);
  expect(
    createHash('sha256')
      .update(header.subarray(0, headerLength - 8))
      .digest()
      .subarray(0, 8),
  ).toEqual(header.subarray(headerLength - 8));
  expect(header[12]).toBe(2);
  expect(header[13]).toBe(0x13);
  const n = header[50]!;
  expect(headerLength).toBe(75 + n);
  const root = await argon2idFromHeader(passphrase, header, 14);
  const key = Buffer.from(hkdfSync('sha256', root, Buffer.alloc(0), 'keyward/backup-archive/v1/payload', 32));
  const verifier = Buffer.from(hkdfSync('sha256', root, Buffer.alloc(0), 'keyward/backup-archive/v1/verify', 16));
  expect(verifier).toEqual(header.subarray(51 + n, 67 + n));
  const prefix = header.subarray(39, 46);
  const segmentSize = header.readUInt32BE(46);
  // Trailer: "KWA-END\n" and the file length.
  expect(file.subarray(file.length - 16, file.length - 8).toString('latin1')).toBe('KWA-END\n');
  expect(file.readBigUInt64BE(file.length - 8)).toBe(BigInt(file.length));
  const payload = file.subarray(headerLength, file.length - 16);
  const stored = segmentSize + 16;
  const count = Math.ceil(payload.length / stored);
  const plain: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const sealed = payload.subarray(i * stored, Math.min((i + 1) * stored, payload.length));
    const nonce = Buffer.concat([prefix, Buffer.from([(i >>> 24) & 255, (i >>> 16) & 255, (i >>> 8) & 255, i & 255]), Buffer.from([i === count - 1 ? 1 : 0])]);
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAAD(header);
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    plain.push(Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]));
    if (i < count - 1) expect(plain[i]!.length).toBe(segmentSize);
  }
  const body = Buffer.concat(plain);
  const entries = new Map<string, Buffer>();
  let at = 0;
  while (body[at] === 0x45) {
    const nameLength = body.readUInt16BE(at + 1);
    const name = body.toString('utf8', at + 3, at + 3 + nameLength);
    at += 3 + nameLength;
    const parts: Buffer[] = [];
    for (let length = body.readUInt32BE(at); length !== 0; length = body.readUInt32BE(at)) {
      parts.push(body.subarray(at + 4, at + 4 + length));
      at += 4 + length;
    }
    at += 4;
    entries.set(name, Buffer.concat(parts));
  }
  expect(body[at]).toBe(0x2e);
  expect(at + 1).toBe(body.length);
  return { writerVersion: header.toString('utf8', 51, 51 + n), entries };
}

/** Rejects with a BackupArchiveError of this code, whose message names none of the given secrets. */
export async function expectArchiveError(promise: Promise<unknown>, code: string, secrets: string[] = []): Promise<BackupArchiveError> {
  const error = await promise.then(
    () => {
      throw new Error(`expected ${code}, but it succeeded`);
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BackupArchiveError);
  expect((error as BackupArchiveError).code).toBe(code);
  for (const secret of secrets) {
    expect((error as Error).message).not.toContain(secret);
    expect(String((error as Error).stack)).not.toContain(secret);
  }
  return error as BackupArchiveError;
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
