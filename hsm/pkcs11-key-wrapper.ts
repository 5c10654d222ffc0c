import * as pkcs11js from 'pkcs11js';
import { KeyCustodyError } from './errors';
import type { KeyWrapper, WrappedKey, WrappingKeyId } from './key-wrapper';
import { Pkcs11Token, mapPkcs11Error } from './pkcs11-token';

const DEK_LENGTH = 32;
const WRAPPED_LENGTH = DEK_LENGTH + 8; // RFC 3394 adds one 64-bit integrity block

/** Transient, extractable key objects that only carry the DEK across the PKCS#11 boundary. */
const SESSION_DEK_TEMPLATE: pkcs11js.Template = [
  { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
  { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
  { type: pkcs11js.CKA_TOKEN, value: false },
  { type: pkcs11js.CKA_SENSITIVE, value: false },
  { type: pkcs11js.CKA_EXTRACTABLE, value: true },
];

/** The KEK in a PKCS#11 token wrapping the DEK with CKM_AES_KEY_WRAP (RFC 3394). */
export class Pkcs11KeyWrapper implements KeyWrapper {
  constructor(private readonly token: Pkcs11Token) {}

  async keyId(): Promise<WrappingKeyId> {
    return this.token.withSession((api, session) => this.token.requireKek(api, session).id);
  }

  async wrap(dek: Buffer): Promise<WrappedKey> {
    if (dek.length !== DEK_LENGTH) throw new RangeError(`a DEK is ${DEK_LENGTH} bytes, not ${dek.length}`);
    return this.token.withSession((api, session) => {
      const kek = this.token.requireKek(api, session);
      const carrier = api.C_CreateObject(session, [...SESSION_DEK_TEMPLATE, { type: pkcs11js.CKA_VALUE, value: dek }]);
      try {
        const blob = api.C_WrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP }, kek.handle, carrier, Buffer.alloc(WRAPPED_LENGTH + 16));
        return { mechanism: 'CKM_AES_KEY_WRAP' as const, kek: kek.id, blob: Buffer.from(blob) };
      } catch (error) {
        throw mapPkcs11Error(error, 'wrapping the DEK');
      } finally {
        api.C_DestroyObject(session, carrier);
      }
    });
  }

  async unwrap(wrapped: WrappedKey): Promise<Buffer> {
    if (wrapped.mechanism !== 'CKM_AES_KEY_WRAP') {
      throw new KeyCustodyError('MECHANISM_UNSUPPORTED', `wrapped DEK uses ${String(wrapped.mechanism)}, which keyward does not unwrap`);
    }
    if (wrapped.blob.length !== WRAPPED_LENGTH) {
      throw new KeyCustodyError('WRAPPED_BLOB_CORRUPT', `wrapped DEK is ${wrapped.blob.length} bytes; CKM_AES_KEY_WRAP of a 32-byte DEK is ${WRAPPED_LENGTH}`);
    }
    return this.token.withSession((api, session) => {
      const kek = this.token.requireKek(api, session);
      if (wrapped.kek.id !== '' && kek.id.id !== wrapped.kek.id) {
        throw new KeyCustodyError('KEK_REPLACED', `the key labelled "${kek.id.label}" is not the KEK that wrapped the DEK (id ${kek.id.id}, expected ${wrapped.kek.id})`);
      }
      let carrier: pkcs11js.Handle;
      try {
        carrier = api.C_UnwrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP }, kek.handle, wrapped.blob, SESSION_DEK_TEMPLATE);
      } catch (error) {
        const mapped = mapPkcs11Error(error, 'unwrapping the DEK');
        // Integrity failures of RFC 3394 surface as assorted return values; the KEK was found, so the blob is at fault.
        if (mapped.code === 'PKCS11_ERROR') {
          throw new KeyCustodyError('WRAPPED_BLOB_CORRUPT', 'the wrapped DEK failed its integrity check under the KEK', { cause: error });
        }
        throw mapped;
      }
      try {
        const [value] = api.C_GetAttributeValue(session, carrier, [{ type: pkcs11js.CKA_VALUE }]);
        const dek = value?.value;
        if (!Buffer.isBuffer(dek) || dek.length !== DEK_LENGTH) {
          throw new KeyCustodyError('WRAPPED_BLOB_CORRUPT', 'the wrapped DEK did not unwrap to a 32-byte key');
        }
        return Buffer.from(dek);
      } finally {
        api.C_DestroyObject(session, carrier);
      }
    });
  }
}
