/**
 * A mechanism's key sizes as a person reads them. A module that sets no upper bound reports a huge
 * one (SoftHSM2: 16–2147483648); AES sizes are in bytes (PKCS#11 §2.8).
 */
export function keySizes(min: number, max: number): string {
  if (min === 0 && max === 0) return 'any key size';
  if (max >= 2 ** 20) return `keys of any size from ${min} bytes`;
  return `keys ${min}–${max}`;
}
