import * as argon2 from 'argon2';

/**
 * The root key of keyward's password formats, from the argon2 library alone (not keyward's code):
 * Argon2id version 0x13, 32 bytes, raw. Every format stores `m (u32) || t (u32) || p (u8) || salt (16)`
 * at some offset of its header: KWB1 and KWK1 at 6, the archive at 14 (docs/formats.md, docs/backup-format.md).
 */
export async function argon2idFromHeader(password: string, header: Buffer, at: number): Promise<Buffer> {
  return argon2.hash(password, {
    type: argon2.argon2id,
    version: 0x13,
    memoryCost: header.readUInt32BE(at),
    timeCost: header.readUInt32BE(at + 4),
    parallelism: header[at + 8]!,
    salt: header.subarray(at + 9, at + 25),
    hashLength: 32,
    raw: true,
  });
}
