import type * as pkcs11js from 'pkcs11js';

/** The PIN lengths a token accepts, in bytes, as its C_GetTokenInfo reports them; null: not stated. */
export interface PinLimits {
  min: number | null;
  max: number | null;
}

export interface PinLengthProblem {
  code: 'PIN_TOO_LONG' | 'PIN_TOO_SHORT';
  /** Names the limit and the PIN, never the PIN itself: "at most 255 characters for the user PIN". */
  detail: string;
  /** The same as a sentence: "The user PIN is longer than this token allows (at most 255 characters)". */
  message: string;
}

// CK_UNAVAILABLE_INFORMATION is ~0 of a CK_ULONG; pkcs11js hands it over as a (lossy) number.
const UNAVAILABLE = 0xffffffff;

/**
 * Reads the limits of the token in a slot. SoftHSM states them for a free slot's uninitialized
 * token too, so they can be checked before C_InitToken.
 */
export function readPinLimits(api: pkcs11js.PKCS11, slot: pkcs11js.Handle): PinLimits {
  return pinLimitsOf(api.C_GetTokenInfo(slot));
}

export function pinLimitsOf(info: pkcs11js.TokenInfo): PinLimits {
  const known = (n: number) => (Number.isSafeInteger(n) && n > 0 && n < UNAVAILABLE ? n : null);
  return { min: known(info.minPinLen), max: known(info.maxPinLen) };
}

/** PKCS#11 counts PIN lengths in bytes; for the ASCII PINs most tokens take, bytes are characters. */
export function checkPinLength(pin: string, limits: PinLimits, name = 'PIN'): PinLengthProblem | null {
  const length = Buffer.byteLength(pin, 'utf8');
  if (limits.max !== null && length > limits.max) {
    const bound = `at most ${limits.max} characters`;
    return { code: 'PIN_TOO_LONG', detail: `${bound} for the ${name}`, message: `The ${name} is longer than this token allows (${bound})` };
  }
  if (limits.min !== null && length < limits.min) {
    const bound = `at least ${limits.min} characters`;
    return { code: 'PIN_TOO_SHORT', detail: `${bound} for the ${name}`, message: `The ${name} is shorter than this token allows (${bound})` };
  }
  return null;
}
