import * as pkcs11js from 'pkcs11js';
import { describe } from './pkcs11-module';

/** Cryptoki return values' names, from pkcs11js's own constants. */
const NAMES = new Map<number, string>(
  Object.entries(pkcs11js)
    .filter((entry): entry is [string, number] => entry[0].startsWith('CKR_') && typeof entry[1] === 'number')
    .map(([name, value]) => [value, name]),
);

/**
 * What the return values keyward meets mean (PKCS#11 v2.40 §5.1), so that an operator reads
 * "CKR_ATTRIBUTE_READ_ONLY: the module refused an attribute the request set" instead of a guess
 * about what went wrong.
 */
const MEANINGS = new Map<number, string>([
  [pkcs11js.CKR_GENERAL_ERROR, 'the module reported an unspecified failure'],
  [pkcs11js.CKR_FUNCTION_FAILED, 'the module could not perform the request'],
  [pkcs11js.CKR_ARGUMENTS_BAD, 'the module rejected the arguments of the call'],
  [pkcs11js.CKR_ATTRIBUTE_READ_ONLY, 'the module refused an attribute the request set'],
  [pkcs11js.CKR_ATTRIBUTE_SENSITIVE, 'the module will not reveal that attribute'],
  [pkcs11js.CKR_ATTRIBUTE_TYPE_INVALID, 'the module does not know an attribute the request set'],
  [pkcs11js.CKR_ATTRIBUTE_VALUE_INVALID, 'the module rejected the value of an attribute'],
  [pkcs11js.CKR_DEVICE_ERROR, 'the token or its device failed'],
  [pkcs11js.CKR_DEVICE_MEMORY, 'the token has no memory left'],
  [pkcs11js.CKR_DEVICE_REMOVED, 'the token was removed'],
  [pkcs11js.CKR_ENCRYPTED_DATA_INVALID, "the ciphertext failed the mechanism's check"],
  [pkcs11js.CKR_ENCRYPTED_DATA_LEN_RANGE, 'the ciphertext has a length the mechanism cannot produce'],
  [pkcs11js.CKR_FUNCTION_NOT_SUPPORTED, 'the module does not implement this function'],
  [pkcs11js.CKR_KEY_HANDLE_INVALID, 'the key is no longer there'],
  [pkcs11js.CKR_KEY_SIZE_RANGE, 'the key has a size the mechanism does not take'],
  [pkcs11js.CKR_KEY_TYPE_INCONSISTENT, 'the key is of a type the mechanism does not take'],
  [pkcs11js.CKR_KEY_FUNCTION_NOT_PERMITTED, "the key's attributes forbid this use"],
  [pkcs11js.CKR_KEY_UNEXTRACTABLE, 'the key may not be wrapped'],
  [pkcs11js.CKR_MECHANISM_INVALID, 'the token does not offer the mechanism'],
  [pkcs11js.CKR_MECHANISM_PARAM_INVALID, "the token rejected the mechanism's parameters"],
  [pkcs11js.CKR_PIN_INCORRECT, 'the PIN was rejected'],
  [pkcs11js.CKR_PIN_LEN_RANGE, 'the PIN is shorter or longer than the token allows'],
  [pkcs11js.CKR_PIN_LOCKED, 'the PIN is locked'],
  [pkcs11js.CKR_SESSION_HANDLE_INVALID, 'the session is no longer valid'],
  [pkcs11js.CKR_TEMPLATE_INCOMPLETE, 'the module needs an attribute the request did not set'],
  [pkcs11js.CKR_TEMPLATE_INCONSISTENT, 'the module refused the combination of attributes the request set'],
  [pkcs11js.CKR_TOKEN_NOT_PRESENT, 'the token is not in its slot'],
  [pkcs11js.CKR_TOKEN_NOT_RECOGNIZED, 'the module does not recognize the token'],
  [pkcs11js.CKR_UNWRAPPING_KEY_HANDLE_INVALID, 'the unwrapping key is no longer there'],
  [pkcs11js.CKR_UNWRAPPING_KEY_SIZE_RANGE, 'the unwrapping key has a size the mechanism does not take'],
  [pkcs11js.CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT, 'the unwrapping key is of a type the mechanism does not take'],
  [pkcs11js.CKR_WRAPPED_KEY_INVALID, "the wrapped key failed the mechanism's check"],
  [pkcs11js.CKR_WRAPPED_KEY_LEN_RANGE, 'the wrapped key has a length (or padding) the mechanism cannot produce'],
  [pkcs11js.CKR_WRAPPING_KEY_HANDLE_INVALID, 'the wrapping key is no longer there'],
  [pkcs11js.CKR_WRAPPING_KEY_SIZE_RANGE, 'the wrapping key has a size the mechanism does not take'],
  [pkcs11js.CKR_WRAPPING_KEY_TYPE_INCONSISTENT, 'the wrapping key is of a type the mechanism does not take'],
  [pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED, 'the module is not initialized'],
]);

/** Return values by which a module refuses part of an object template; a smaller template may pass. */
export const TEMPLATE_REFUSALS = new Set([pkcs11js.CKR_ATTRIBUTE_READ_ONLY, pkcs11js.CKR_ATTRIBUTE_TYPE_INVALID, pkcs11js.CKR_ATTRIBUTE_VALUE_INVALID, pkcs11js.CKR_TEMPLATE_INCONSISTENT]);

/** Return values by which an unwrap says the ciphertext, under this key, failed the mechanism's own check. */
export const INTEGRITY_FAILURES = new Set([pkcs11js.CKR_ENCRYPTED_DATA_INVALID, pkcs11js.CKR_ENCRYPTED_DATA_LEN_RANGE, pkcs11js.CKR_WRAPPED_KEY_INVALID, pkcs11js.CKR_WRAPPED_KEY_LEN_RANGE]);

/** Return values that say nothing about the cause: a failed integrity check may hide behind them. */
export const UNSPECIFIED_FAILURES = new Set([pkcs11js.CKR_GENERAL_ERROR, pkcs11js.CKR_FUNCTION_FAILED]);

export function returnValueName(code: number): string {
  return NAMES.get(code) ?? `CKR 0x${code.toString(16)}`;
}

/** "CKR_NAME: what it means" for a Cryptoki error, or the error's message for anything else. */
export function explainPkcs11Error(error: unknown): string {
  if (!(error instanceof pkcs11js.Pkcs11Error)) return describe(error);
  const meaning = MEANINGS.get(error.code);
  return meaning ? `${returnValueName(error.code)}: ${meaning}` : `${describe(error)} (CKR 0x${error.code.toString(16)})`;
}
