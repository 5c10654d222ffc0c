import { createCipheriv, createDecipheriv, randomBytes, randomInt } from 'node:crypto';

/** The secret columns of docs/formats.md §4, by table. */
export const SECRET_COLUMNS: Record<string, string[]> = {
  devices: ['est_password', 'cmp_shared_secret'],
  credentials: ['private_key'],
  tls_server_credentials: ['private_key'],
  custody_canary: ['value'],
};

/** docs/formats.md §4, implemented with Node's crypto alone — not with keyward's code. */
export function decryptPerDocs(raw: Buffer, dek: Buffer, table: string, column: string): { version: number; keyId: string; value: string; padding: number } {
  const keyId = raw.subarray(1, 9).toString('hex');
  const nonce = raw.subarray(9, 21);
  const tag = raw.subarray(raw.length - 16);
  const decipher = createDecipheriv('aes-256-gcm', dek, nonce);
  decipher.setAAD(Buffer.concat([raw.subarray(0, 9), Buffer.from(`${table}.${column}`, 'utf8')]));
  decipher.setAuthTag(tag);
  const body = Buffer.concat([decipher.update(raw.subarray(21, raw.length - 16)), decipher.final()]);
  const length = body.readUInt32BE(0);
  return { version: raw[0]!, keyId, value: body.subarray(4, 4 + length).toString('utf8'), padding: body.length - 4 - length };
}

/** Every column docs/formats.md §4 names, log_chain_keys (rows only once a DEK is retired) included. */
export const ALL_SECRET_COLUMNS_PER_DOCS: Record<string, string[]> = { ...SECRET_COLUMNS, log_chain_keys: ['sealed_key'], web_secrets: ['value'] };

/** §4 "To read" with a keyset: the value's key id picks the DEK. */
export function decryptWithKeysetPerDocs(raw: Buffer, deks: ReadonlyMap<string, Buffer>, table: string, column: string): ReturnType<typeof decryptPerDocs> {
  if (raw[0] !== 0x01) throw new Error(`${table}.${column}: format version ${raw[0]}, not 1`);
  const keyId = raw.subarray(1, 9).toString('hex');
  const dek = deks.get(keyId);
  if (!dek) throw new Error(`${table}.${column}: no DEK with key id ${keyId}`);
  return decryptPerDocs(raw, dek, table, column);
}

/** §4 written with Node's crypto alone: a value as another implementation holding the DEK would seal it. */
export function encryptPerDocs(value: string, dek: Buffer, keyId: string, table: string, column: string): Buffer {
  const header = Buffer.concat([Buffer.from([0x01]), Buffer.from(keyId, 'hex')]);
  const utf8 = Buffer.from(value, 'utf8');
  const body = Buffer.concat([Buffer.alloc(4), utf8, Buffer.alloc(randomInt(16))]);
  body.writeUInt32BE(utf8.length, 0);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', dek, nonce);
  cipher.setAAD(Buffer.concat([header, Buffer.from(`${table}.${column}`, 'utf8')]));
  const ciphertext = Buffer.concat([cipher.update(body), cipher.final()]);
  return Buffer.concat([header, nonce, ciphertext, cipher.getAuthTag()]);
}
