const VALUE = new Int8Array(128).fill(-1);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.split('').forEach((c, i) => (VALUE[c.charCodeAt(0)] = i));

/**
 * Decodes canonical base64 only. Node's decoder skips stray characters, accepts the URL-safe
 * alphabet and ignores the unused low bits of the last symbol, so two different stored strings
 * could decode to the same bytes; a tampered value must not decode at all. Checked without a
 * second encoding: the decoded length catches skipped characters, the last symbol its spare bits.
 */
export function decodeBase64Strict(text: string, scratch?: Buffer): Buffer | null {
  const length = text.length;
  if (length % 4 !== 0 || text.includes('-') || text.includes('_')) return null;
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const expected = (length / 4) * 3 - pad;
  // Decoding into a caller's scratch buffer spares an allocation per value on the hot read path.
  const bytes = scratch && scratch.length >= expected ? scratch.subarray(0, scratch.write(text, 0, 'base64')) : Buffer.from(text, 'base64');
  if (bytes.length !== expected) return null;
  if (pad > 0) {
    const last = VALUE[text.charCodeAt(length - pad - 1)] ?? -1;
    if (last < 0 || (last & (pad === 2 ? 0x0f : 0x03)) !== 0) return null;
  }
  return bytes;
}
