import { createDecipheriv } from 'node:crypto';

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
export const ALL_SECRET_COLUMNS_PER_DOCS: Record<string, string[]> = { ...SECRET_COLUMNS, log_chain_keys: ['sealed_key'] };

/** §4 "To read" with a keyset: the value's key id picks the DEK. */
export function decryptWithKeysetPerDocs(raw: Buffer, deks: ReadonlyMap<string, Buffer>, table: string, column: string): ReturnType<typeof decryptPerDocs> {
  if (raw[0] !== 0x01) throw new Error(`${table}.${column}: format version ${raw[0]}, not 1`);
  const keyId = raw.subarray(1, 9).toString('hex');
  const dek = deks.get(keyId);
  if (!dek) throw new Error(`${table}.${column}: no DEK with key id ${keyId}`);
  return decryptPerDocs(raw, dek, table, column);
}
