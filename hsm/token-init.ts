import * as pkcs11js from 'pkcs11js';
import { KeywardError } from '../errors/keyward-error';

/** Which step of making a token failed: the token itself, or its user PIN (the token then exists). */
export class TokenInitError extends KeywardError {
  constructor(
    readonly step: 'init-token' | 'init-pin',
    override readonly cause: unknown,
  ) {
    super(step === 'init-token' ? 'INIT_TOKEN_FAILED' : 'INIT_PIN_FAILED', cause instanceof Error ? cause.message : String(cause));
    this.name = 'TokenInitError';
  }
}

/**
 * Initializes the token of a free slot and sets its user PIN, in this process: the PINs stay in
 * memory, never in a child's arguments or environment. `made` hears the new token's serial number as
 * soon as it exists, so that a caller can remove exactly that token if the PIN step fails.
 */
export function initializeToken(api: pkcs11js.PKCS11, slot: pkcs11js.Handle, label: string, soPin: string, userPin: string, made?: (serial: string) => void): void {
  try {
    // PKCS#11 pads a label with spaces; pkcs11js would pad it with NULs, which other clients keep.
    api.C_InitToken(slot, soPin, label.padEnd(32, ' '));
  } catch (error) {
    throw new TokenInitError('init-token', error);
  }
  made?.(api.C_GetTokenInfo(slot).serialNumber.trim());
  const session = api.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  try {
    api.C_Login(session, pkcs11js.CKU_SO, soPin);
    api.C_InitPIN(session, userPin);
    api.C_Logout(session);
  } catch (error) {
    throw new TokenInitError('init-pin', error);
  } finally {
    api.C_CloseSession(session);
  }
}
