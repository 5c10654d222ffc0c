import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';
import { isKeyCustodyError, KeyCustodyError } from '../errors/key-custody-error';
import type { KeyWrapper, WrapMechanism, WrappedKey, WrappingKeyId } from './key-wrapper';
import { pkcs11Code } from './pkcs11-module';
import { explainPkcs11Error, INTEGRITY_FAILURES, returnValueName, TEMPLATE_REFUSALS, UNSPECIFIED_FAILURES } from './pkcs11-return-codes';
import { Pkcs11Token, mapPkcs11Error } from './pkcs11-token';
import { readCapabilities, requireUsableToken, WRAP_MECHANISMS } from './token-capabilities';

const DEK_LENGTH = 32;
const KW_LENGTH = DEK_LENGTH + 8; // RFC 3394 and RFC 5649 both add one 64-bit integrity block to a 32-byte key

/**
 * CKM_AES_CBC_PAD has no integrity of its own, so its blob carries two check values beside the IV
 * and the ciphertext (docs/formats.md): one of the DEK (an AES-GCM tag under the unwrapped DEK) and
 * one of the KEK (the first 8 bytes of a fixed key wrapped under it), so that a wrong KEK, a damaged
 * blob and a good one are told apart.
 */
const CBC = { iv: 16, wrapped: 48, dekCheckNonce: 12, dekCheckTag: 16, kekCheck: 8 } as const;
const CBC_LENGTH = CBC.iv + CBC.wrapped + CBC.dekCheckNonce + CBC.dekCheckTag + CBC.kekCheck;
const DEK_CHECK_LABEL = Buffer.from('keyward DEK check v1', 'ascii');
const KEK_CHECK_KEY = createHash('sha256').update('keyward KEK check v1').digest();

/** Transient, extractable key objects that only carry a key across the PKCS#11 boundary. */
const CARRIER_BASE: pkcs11js.Template = [
  { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
  { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
];
const CARRIER_TEMPLATE: pkcs11js.Template = [
  ...CARRIER_BASE,
  { type: pkcs11js.CKA_TOKEN, value: false },
  { type: pkcs11js.CKA_SENSITIVE, value: false },
  { type: pkcs11js.CKA_EXTRACTABLE, value: true },
];
/**
 * Unwrap templates, from what the DEK needs down to the least a module must accept: some modules
 * (openCryptoki) refuse CKA_SENSITIVE or CKA_EXTRACTABLE in an unwrap template; their defaults for a
 * session key are what keyward needs, and a value that cannot be read is reported as such.
 */
const UNWRAP_TEMPLATES: pkcs11js.Template[] = [CARRIER_TEMPLATE, [...CARRIER_BASE, { type: pkcs11js.CKA_TOKEN, value: false }], CARRIER_BASE];

const CODES = new Map(WRAP_MECHANISMS.map((m) => [m.name, m.code]));

type Api = pkcs11js.PKCS11;
type Handle = pkcs11js.Handle;

/**
 * The KEK in a PKCS#11 token wrapping the DEK with the strongest mechanism the token offers:
 * CKM_AES_KEY_WRAP (RFC 3394), CKM_AES_KEY_WRAP_PAD (RFC 5649), or CKM_AES_CBC_PAD with check values.
 * A blob is unwrapped with the mechanism recorded beside it, whatever the token would choose today.
 */
export class Pkcs11KeyWrapper implements KeyWrapper {
  private chosen: WrapMechanism | null = null;
  /** The CKA_ID (hex) of the KEK new wraps use; undefined: the only key with the label. */
  private readonly kekId: string | undefined;

  /**
   * options.kekId names the KEK that wrap() and keyId() use while several carry the label (a KEK
   * rotation); unwrap() always uses the KEK its blob names.
   */
  constructor(
    private readonly token: Pkcs11Token,
    options: { kekId?: string } = {},
  ) {
    this.kekId = options.kekId;
  }

  async keyId(): Promise<WrappingKeyId> {
    return this.token.withSession((api, session) => this.token.requireKek(api, session, this.kekId).id);
  }

  /** The mechanism new wraps use on this token, read once from its mechanism list. */
  mechanism(): WrapMechanism {
    if (this.chosen === null) {
      const capabilities = readCapabilities(this.token.config.modulePath, this.token.config.tokenLabel);
      if (capabilities === null) throw new KeyCustodyError('TOKEN_MISSING', `no token labelled "${this.token.config.tokenLabel}" in ${this.token.config.modulePath}`);
      this.chosen = requireUsableToken(capabilities);
    }
    return this.chosen;
  }

  async wrap(dek: Buffer): Promise<WrappedKey> {
    if (dek.length !== DEK_LENGTH) throw new RangeError(`a DEK is ${DEK_LENGTH} bytes, not ${dek.length}`);
    const mechanism = this.mechanism();
    return this.token.withSession((api, session) => {
      const kek = this.token.requireKek(api, session, this.kekId);
      try {
        if (mechanism !== 'CKM_AES_CBC_PAD') {
          return { mechanism, kek: kek.id, blob: wrapWith(api, session, { mechanism: CODES.get(mechanism)! }, kek.handle, dek) };
        }
        const iv = randomBytes(CBC.iv);
        const wrapped = wrapWith(api, session, { mechanism: pkcs11js.CKM_AES_CBC_PAD, parameter: iv }, kek.handle, dek);
        if (wrapped.length !== CBC.wrapped) throw new KeyCustodyError('PKCS11_ERROR', `CKM_AES_CBC_PAD wrapped a 32-byte DEK to ${wrapped.length} bytes, not ${CBC.wrapped}`);
        const nonce = randomBytes(CBC.dekCheckNonce);
        const blob = Buffer.concat([iv, wrapped, nonce, dekCheckTag(dek, nonce, iv, wrapped), kekCheck(api, session, kek.handle)]);
        return { mechanism, kek: kek.id, blob };
      } catch (error) {
        throw mapPkcs11Error(error, `wrapping the DEK with ${mechanism}`);
      }
    });
  }

  /** Wraps and unwraps a random key under the KEK: proves the token can hold the DEK before it is made. */
  async selfTest(): Promise<WrapMechanism> {
    const probe = randomBytes(DEK_LENGTH);
    const wrapped = await this.wrap(probe);
    if (!(await this.unwrap(wrapped)).equals(probe)) throw new KeyCustodyError('PKCS11_ERROR', `a test key wrapped with ${wrapped.mechanism} did not unwrap to itself`);
    return wrapped.mechanism;
  }

  async unwrap(wrapped: WrappedKey): Promise<Buffer> {
    const code = CODES.get(wrapped.mechanism);
    if (code === undefined) {
      throw new KeyCustodyError('MECHANISM_UNSUPPORTED', `wrapped DEK uses ${String(wrapped.mechanism)}, which keyward does not unwrap`);
    }
    const expected = wrapped.mechanism === 'CKM_AES_CBC_PAD' ? CBC_LENGTH : KW_LENGTH;
    if (wrapped.blob.length !== expected) {
      throw new KeyCustodyError('WRAPPED_BLOB_CORRUPT', `wrapped DEK is ${wrapped.blob.length} bytes; ${wrapped.mechanism} of a 32-byte DEK is ${expected}`);
    }
    return this.token.withSession((api, session) => {
      // The blob names its KEK; a blob recorded without a CKA_ID (an import) takes the chosen or only one.
      const kek = this.token.requireKek(api, session, wrapped.kek.id === '' ? this.kekId : wrapped.kek.id);
      return wrapped.mechanism === 'CKM_AES_CBC_PAD' ? this.unwrapCbc(api, session, kek, wrapped.blob) : this.unwrapKeyWrap(api, session, kek, wrapped.mechanism, code, wrapped.blob);
    });
  }

  /** RFC 3394 / 5649: the mechanism checks integrity itself; the module's word for a failure varies. */
  private unwrapKeyWrap(api: Api, session: Handle, kek: { handle: Handle; id: WrappingKeyId }, name: WrapMechanism, code: number, blob: Buffer): Buffer {
    try {
      return unwrapWith(api, session, { mechanism: code }, kek.handle, blob);
    } catch (error) {
      const rv = pkcs11Code(error);
      const under = `under the KEK with CKA_ID ${kek.id.id || '(none)'}`;
      if (rv !== undefined && INTEGRITY_FAILURES.has(rv)) throw corrupt(`${name} integrity check failed ${under} (${returnValueName(rv)})`, error);
      // SoftHSM2 and others answer a failed RFC 3394 check with CKR_GENERAL_ERROR. A fresh wrap under
      // the same KEK that unwraps shows the module and the KEK work: then it is this blob that failed.
      if (rv !== undefined && UNSPECIFIED_FAILURES.has(rv) && roundTripWorks(api, session, kek.handle, code)) {
        throw corrupt(`${name} integrity check failed ${under} (the module said ${returnValueName(rv)}; a test wrap under the same KEK unwraps)`, error);
      }
      throw mapPkcs11Error(error, `unwrapping the DEK with ${name}`);
    }
  }

  private unwrapCbc(api: Api, session: Handle, kek: { handle: Handle; id: WrappingKeyId }, blob: Buffer): Buffer {
    let at = 0;
    const take = (n: number) => blob.subarray(at, (at += n));
    const iv = take(CBC.iv);
    const wrapped = take(CBC.wrapped);
    const nonce = take(CBC.dekCheckNonce);
    const tag = take(CBC.dekCheckTag);
    const storedKekCheck = take(CBC.kekCheck);
    let actualKekCheck: Buffer;
    try {
      actualKekCheck = kekCheck(api, session, kek.handle);
    } catch (error) {
      throw mapPkcs11Error(error, 'computing the KEK check value');
    }
    // A wrong KEK and a damaged blob both fail the unwrap or the DEK check; the KEK check value tells them apart.
    const kekMatches = actualKekCheck.equals(storedKekCheck);
    const failed = (why: string, cause?: unknown): KeyCustodyError =>
      kekMatches
        ? corrupt(why, cause)
        : new KeyCustodyError(
            'KEK_REPLACED',
            `the key labelled "${kek.id.label}" with CKA_ID ${kek.id.id || '(none)'} is not the KEK that wrapped the DEK: its check value differs from the one stored with the wrap, and the DEK does not unwrap under it`,
            cause === undefined ? undefined : { cause },
          );
    let dek: Buffer;
    try {
      dek = unwrapWith(api, session, { mechanism: pkcs11js.CKM_AES_CBC_PAD, parameter: Buffer.from(iv) }, kek.handle, wrapped);
    } catch (error) {
      const rv = pkcs11Code(error);
      if (isKeyCustodyError(error, 'WRAPPED_BLOB_CORRUPT')) throw failed(error.message.replace(/^the wrapped DEK failed its integrity check: /, ''), error);
      // CBC-PAD's only check is its padding: a module says so with one of these codes.
      if (rv !== undefined && (INTEGRITY_FAILURES.has(rv) || rv === pkcs11js.CKR_KEY_SIZE_RANGE)) throw failed(`CKM_AES_CBC_PAD unwrap failed its padding check (${returnValueName(rv)})`, error);
      throw mapPkcs11Error(error, 'unwrapping the DEK with CKM_AES_CBC_PAD');
    }
    if (!dekCheckVerifies(dek, nonce, iv, wrapped, tag)) {
      dek.fill(0);
      throw failed('the unwrapped DEK does not match the DEK check value stored with the wrap');
    }
    if (!kekMatches) {
      dek.fill(0);
      throw corrupt('the KEK check value stored with the wrap is damaged (the DEK under it verified: recover with the backup password to write a fresh wrap)');
    }
    return dek;
  }
}

function corrupt(why: string, cause?: unknown): KeyCustodyError {
  return new KeyCustodyError('WRAPPED_BLOB_CORRUPT', `the wrapped DEK failed its integrity check: ${why}`, cause === undefined ? undefined : { cause });
}

function wrapWith(api: Api, session: Handle, mechanism: pkcs11js.Mechanism, kek: Handle, key: Buffer): Buffer {
  const carrier = api.C_CreateObject(session, [...CARRIER_TEMPLATE, { type: pkcs11js.CKA_VALUE, value: key }]);
  try {
    return Buffer.from(api.C_WrapKey(session, mechanism, kek, carrier, Buffer.alloc(128)));
  } finally {
    api.C_DestroyObject(session, carrier);
  }
}

/** C_UnwrapKey with the fullest template the module accepts, then the key's value. */
function unwrapWith(api: Api, session: Handle, mechanism: pkcs11js.Mechanism, kek: Handle, blob: Buffer): Buffer {
  let carrier: Handle | null = null;
  for (const [i, template] of UNWRAP_TEMPLATES.entries()) {
    try {
      carrier = api.C_UnwrapKey(session, mechanism, kek, blob, template);
      break;
    } catch (error) {
      const rv = pkcs11Code(error);
      if (rv === undefined || !TEMPLATE_REFUSALS.has(rv) || i === UNWRAP_TEMPLATES.length - 1) throw error;
    }
  }
  try {
    let value: unknown;
    try {
      value = api.C_GetAttributeValue(session, carrier!, [{ type: pkcs11js.CKA_VALUE }])[0]?.value;
    } catch (error) {
      throw new KeyCustodyError('PKCS11_ERROR', `reading the unwrapped DEK failed: ${explainPkcs11Error(error)} (the module made the unwrapped key sensitive or unextractable)`, { cause: error });
    }
    if (!Buffer.isBuffer(value) || value.length !== DEK_LENGTH) throw corrupt(`it unwrapped to ${Buffer.isBuffer(value) ? value.length : 0} bytes, not a 32-byte key`);
    return Buffer.from(value);
  } finally {
    api.C_DestroyObject(session, carrier!);
  }
}

/** A random key wrapped and unwrapped under the KEK: true when the module and the KEK work with `code`. */
function roundTripWorks(api: Api, session: Handle, kek: Handle, code: number): boolean {
  const probe = randomBytes(DEK_LENGTH);
  try {
    return unwrapWith(api, session, { mechanism: code }, kek, wrapWith(api, session, { mechanism: code }, kek, probe)).equals(probe);
  } catch {
    return false;
  }
}

/** AES-256-GCM under the DEK, over nothing, with the label and the wrap as associated data: its tag. */
function dekCheckTag(dek: Buffer, nonce: Buffer, iv: Buffer, wrapped: Buffer): Buffer {
  const cipher = createCipheriv('aes-256-gcm', dek, nonce);
  cipher.setAAD(Buffer.concat([DEK_CHECK_LABEL, iv, wrapped]));
  cipher.final();
  return cipher.getAuthTag();
}

function dekCheckVerifies(dek: Buffer, nonce: Buffer, iv: Buffer, wrapped: Buffer, tag: Buffer): boolean {
  const decipher = createDecipheriv('aes-256-gcm', dek, nonce);
  decipher.setAAD(Buffer.concat([DEK_CHECK_LABEL, iv, wrapped]));
  decipher.setAuthTag(tag);
  try {
    decipher.final();
    return true;
  } catch {
    return false;
  }
}

/** The first 8 bytes of a fixed key wrapped under the KEK with CKM_AES_CBC_PAD and a zero IV. */
function kekCheck(api: Api, session: Handle, kek: Handle): Buffer {
  return wrapWith(api, session, { mechanism: pkcs11js.CKM_AES_CBC_PAD, parameter: Buffer.alloc(16) }, kek, KEK_CHECK_KEY).subarray(0, CBC.kekCheck);
}
