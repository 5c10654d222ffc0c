/**
 * One capability, one interface (as Vault's seal wrappers): whatever holds the KEK can wrap and
 * unwrap a DEK and name the key it used. The DEK never leaves process memory except wrapped.
 */
export interface KeyWrapper {
  /** Stable identity of the wrapping key (for a PKCS#11 KEK: its label and CKA_ID). */
  keyId(): Promise<WrappingKeyId>;
  wrap(dek: Buffer): Promise<WrappedKey>;
  unwrap(wrapped: WrappedKey): Promise<Buffer>;
}

export interface WrappingKeyId {
  label: string;
  /** Hex of the key's CKA_ID, random per generated KEK, so a replaced KEK is told from the original. */
  id: string;
}

/** How a wrapped DEK was made; recorded with each blob (docs/formats.md). */
export type WrapMechanism = 'CKM_AES_KEY_WRAP' | 'CKM_AES_KEY_WRAP_PAD' | 'CKM_AES_CBC_PAD';

export interface WrappedKey {
  mechanism: WrapMechanism;
  kek: WrappingKeyId;
  blob: Buffer;
}
