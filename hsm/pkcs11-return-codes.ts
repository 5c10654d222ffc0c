import * as pkcs11js from 'pkcs11js';
import { describe } from './pkcs11-module';

/**
 * Cryptoki return values by code, with what each means (PKCS#11 v2.40 §5.1), so that an operator
 * reads "CKR_ATTRIBUTE_READ_ONLY: the module refused an attribute the request set" instead of a
 * guess about what went wrong.
 */
const RETURN_VALUES: Record<number, [name: string, meaning: string]> = {
  0x05: ['CKR_GENERAL_ERROR', 'the module reported an unspecified failure'],
  0x06: ['CKR_FUNCTION_FAILED', 'the module could not perform the request'],
  0x07: ['CKR_ARGUMENTS_BAD', 'the module rejected the arguments of the call'],
  0x10: ['CKR_ATTRIBUTE_READ_ONLY', 'the module refused an attribute the request set'],
  0x11: ['CKR_ATTRIBUTE_SENSITIVE', 'the module will not reveal that attribute'],
  0x12: ['CKR_ATTRIBUTE_TYPE_INVALID', 'the module does not know an attribute the request set'],
  0x13: ['CKR_ATTRIBUTE_VALUE_INVALID', 'the module rejected the value of an attribute'],
  0x30: ['CKR_DEVICE_ERROR', 'the token or its device failed'],
  0x31: ['CKR_DEVICE_MEMORY', 'the token has no memory left'],
  0x32: ['CKR_DEVICE_REMOVED', 'the token was removed'],
  0x40: ['CKR_ENCRYPTED_DATA_INVALID', 'the ciphertext failed the mechanism\'s check'],
  0x41: ['CKR_ENCRYPTED_DATA_LEN_RANGE', 'the ciphertext has a length the mechanism cannot produce'],
  0x54: ['CKR_FUNCTION_NOT_SUPPORTED', 'the module does not implement this function'],
  0x60: ['CKR_KEY_HANDLE_INVALID', 'the key is no longer there'],
  0x62: ['CKR_KEY_SIZE_RANGE', 'the key has a size the mechanism does not take'],
  0x63: ['CKR_KEY_TYPE_INCONSISTENT', 'the key is of a type the mechanism does not take'],
  0x68: ['CKR_KEY_FUNCTION_NOT_PERMITTED', 'the key\'s attributes forbid this use'],
  0x6a: ['CKR_KEY_UNEXTRACTABLE', 'the key may not be wrapped'],
  0x70: ['CKR_MECHANISM_INVALID', 'the token does not offer the mechanism'],
  0x71: ['CKR_MECHANISM_PARAM_INVALID', 'the token rejected the mechanism\'s parameters'],
  0xa0: ['CKR_PIN_INCORRECT', 'the PIN was rejected'],
  0xa2: ['CKR_PIN_LEN_RANGE', 'the PIN is shorter or longer than the token allows'],
  0xa4: ['CKR_PIN_LOCKED', 'the PIN is locked'],
  0xb3: ['CKR_SESSION_HANDLE_INVALID', 'the session is no longer valid'],
  0xd0: ['CKR_TEMPLATE_INCOMPLETE', 'the module needs an attribute the request did not set'],
  0xd1: ['CKR_TEMPLATE_INCONSISTENT', 'the module refused the combination of attributes the request set'],
  0xe0: ['CKR_TOKEN_NOT_PRESENT', 'the token is not in its slot'],
  0xe1: ['CKR_TOKEN_NOT_RECOGNIZED', 'the module does not recognize the token'],
  0xf0: ['CKR_UNWRAPPING_KEY_HANDLE_INVALID', 'the unwrapping key is no longer there'],
  0xf1: ['CKR_UNWRAPPING_KEY_SIZE_RANGE', 'the unwrapping key has a size the mechanism does not take'],
  0xf2: ['CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT', 'the unwrapping key is of a type the mechanism does not take'],
  0x110: ['CKR_WRAPPED_KEY_INVALID', 'the wrapped key failed the mechanism\'s check'],
  0x112: ['CKR_WRAPPED_KEY_LEN_RANGE', 'the wrapped key has a length (or padding) the mechanism cannot produce'],
  0x113: ['CKR_WRAPPING_KEY_HANDLE_INVALID', 'the wrapping key is no longer there'],
  0x114: ['CKR_WRAPPING_KEY_SIZE_RANGE', 'the wrapping key has a size the mechanism does not take'],
  0x115: ['CKR_WRAPPING_KEY_TYPE_INCONSISTENT', 'the wrapping key is of a type the mechanism does not take'],
  0x190: ['CKR_CRYPTOKI_NOT_INITIALIZED', 'the module is not initialized'],
};

/** Return values by which a module refuses part of an object template; a smaller template may pass. */
export const TEMPLATE_REFUSALS = new Set([0x10, 0x12, 0x13, 0xd1]);

/** Return values by which an unwrap says the ciphertext, under this key, failed the mechanism's own check. */
export const INTEGRITY_FAILURES = new Set([0x40, 0x41, 0x110, 0x112]);

/** Return values that say nothing about the cause: a failed integrity check may hide behind them. */
export const UNSPECIFIED_FAILURES = new Set([0x05, 0x06]);

export function returnValueName(code: number): string {
  return RETURN_VALUES[code]?.[0] ?? `CKR 0x${code.toString(16)}`;
}

/** "CKR_NAME: what it means" for a Cryptoki error, or the error's message for anything else. */
export function explainPkcs11Error(error: unknown): string {
  if (!(error instanceof pkcs11js.Pkcs11Error)) return describe(error);
  const known = RETURN_VALUES[error.code];
  return known ? `${known[0]}: ${known[1]}` : `${describe(error)} (CKR 0x${error.code.toString(16)})`;
}
