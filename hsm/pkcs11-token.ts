import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';
import { KeyCustodyError, isKeyCustodyError } from '../errors/key-custody-error';
import { KeywardError } from '../errors/keyward-error';
import type { WrappingKeyId } from './key-wrapper';
import { describePinSource, PinSource, readPin } from './pin-source';
import { KeptSession, Pkcs11Module, TokenScan, pkcs11Code } from './pkcs11-module';
import { explainPkcs11Error } from './pkcs11-return-codes';
import { checkPinLength, PinLimits, readPinLimits } from './token-pin-limits';
import { outOfStep } from './out-of-step';

export interface TokenConfig {
  modulePath: string;
  tokenLabel: string;
  kekLabel: string;
  pin: PinSource;
}

export interface TokenProbe {
  moduleLoaded: boolean;
  /** false only when every scan of the window found no such token; null when a scan could not tell. */
  tokenPresent: boolean | null;
  kek: WrappingKeyId | null;
  /** Why the probe could not see further, when it could not: its error code. */
  problem?: string;
}

/**
 * How long an absence must last before a probe reports it: a module rescanned while other processes
 * log in to the same token (SoftHSM2 rewrites its token file then) may miss the token, or its KEK,
 * for one scan. Every scan of the window must agree.
 */
export interface AbsenceWindow {
  scans: number;
  intervalMs: number;
}

export const ABSENCE_WINDOW: AbsenceWindow = { scans: 5, intervalMs: 150 };

/** Problems a rescan may clear; the others (a rejected PIN above all: each try costs an attempt) are final. */
const TRANSIENT_PROBLEMS = new Set(['TOKEN_MISSING', 'TOKEN_UNREACHABLE', 'PKCS11_ERROR']);

/** What one scan saw. */
type ScanVerdict =
  { kind: 'kek'; kek: WrappingKeyId } | { kind: 'tokenAbsent' } | { kind: 'kekAbsent' } | { kind: 'unknown'; tokenSeen: boolean; problem: string } | { kind: 'final'; probe: TokenProbe };

/** What a token answers when a kept session is no longer usable: it is dropped and a fresh one opened. */
const SESSION_GONE = new Set([
  pkcs11js.CKR_SESSION_HANDLE_INVALID,
  pkcs11js.CKR_SESSION_CLOSED,
  pkcs11js.CKR_USER_NOT_LOGGED_IN,
  pkcs11js.CKR_TOKEN_NOT_PRESENT,
  pkcs11js.CKR_TOKEN_NOT_RECOGNIZED,
  pkcs11js.CKR_DEVICE_REMOVED,
  pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED,
]);

/** CKS_RW_USER_FUNCTIONS: a read-write session of the logged-in user (PKCS#11 2.40 §5.6). */
const CKS_RW_USER_FUNCTIONS = 3;

/** Keys the PIN hash kept beside a session: random per process, so the hash is no stored PIN check. */
const PIN_TAG_KEY = randomBytes(32);

function pinTag(pin: string): Buffer {
  return createHmac('sha256', PIN_TAG_KEY).update(pin, 'utf8').digest();
}

/** Whether the token still holds this session open and logged in; a logged-out session would see no private object. */
function loggedIn(api: pkcs11js.PKCS11, session: pkcs11js.Handle): boolean {
  try {
    return api.C_GetSessionInfo(session).state === CKS_RW_USER_FUNCTIONS;
  } catch {
    return false;
  }
}

function dropSession(module: Pkcs11Module, label: string, kept: KeptSession, logout: boolean): void {
  if (module.sessions.get(label) === kept) module.sessions.delete(label);
  if (logout) {
    try {
      module.api.C_Logout(kept.session);
    } catch {
      // Already logged out, or the session is gone.
    }
  }
  try {
    module.api.C_CloseSession(kept.session);
  } catch {
    // The token went away under the session; nothing left to close.
  }
}

/**
 * A PKCS#11 token found by its label, holding the KEK. One logged-in session per token is kept for
 * the process (withSession); a module refresh() ends it, so a token that disappears or reappears is
 * seen at the next probe as before.
 */
export class Pkcs11Token {
  constructor(readonly config: TokenConfig) {}

  private module(): Pkcs11Module {
    return Pkcs11Module.open(this.config.modulePath);
  }

  /**
   * What the token holds right now, read fresh from the module; never throws for absence. An absent
   * token or KEK is reported only when every rescan of the window agrees; a slot that could not be
   * read makes the answer unknown (tokenPresent null, problem TOKEN_UNREACHABLE), never "absent".
   * With kekId (the CKA_ID the stored wrap names), `kek` is that KEK, or null when it is absent (other
   * keys with the label then make it a final answer, as a replaced KEK); without one, the only KEK,
   * and problem KEK_AMBIGUOUS when several carry the label.
   */
  async probe(window: AbsenceWindow = ABSENCE_WINDOW, kekId?: string): Promise<TokenProbe> {
    let module: Pkcs11Module;
    try {
      module = this.module();
    } catch (error) {
      return { moduleLoaded: false, tokenPresent: null, kek: null, problem: codeOf(error) };
    }
    const verdicts: ScanVerdict[] = [];
    for (let scan = 1; ; scan++) {
      const verdict = this.scanOnce(module, kekId);
      if (verdict.kind === 'kek') return { moduleLoaded: true, tokenPresent: true, kek: verdict.kek };
      if (verdict.kind === 'final') return verdict.probe;
      verdicts.push(verdict);
      if (scan >= Math.max(1, window.scans)) break;
      await new Promise((resolve) => setTimeout(resolve, outOfStep(window.intervalMs)));
    }
    if (verdicts.every((v) => v.kind === 'tokenAbsent')) return { moduleLoaded: true, tokenPresent: false, kek: null };
    if (verdicts.every((v) => v.kind === 'kekAbsent')) return { moduleLoaded: true, tokenPresent: true, kek: null };
    // The scans disagree, or could not tell: neither the token nor its KEK is known to be gone.
    const unknown = verdicts.filter((v): v is Extract<ScanVerdict, { kind: 'unknown' }> => v.kind === 'unknown');
    const tokenSeen = verdicts.some((v) => v.kind === 'kekAbsent' || (v.kind === 'unknown' && v.tokenSeen));
    return { moduleLoaded: true, tokenPresent: tokenSeen ? true : null, kek: null, problem: unknown.at(-1)?.problem ?? 'TOKEN_UNREACHABLE' };
  }

  /** One rescan of the module: the token's KEK, an absence, or why it could not tell. */
  private scanOnce(module: Pkcs11Module, kekId: string | undefined): ScanVerdict {
    let scan: TokenScan;
    try {
      module.refresh();
      scan = module.scanForToken(this.config.tokenLabel);
    } catch (error) {
      const problem = codeOf(error);
      return TRANSIENT_PROBLEMS.has(problem) ? { kind: 'unknown', tokenSeen: false, problem } : { kind: 'final', probe: { moduleLoaded: true, tokenPresent: null, kek: null, problem } };
    }
    if (!scan.found) return scan.unknown === null ? { kind: 'tokenAbsent' } : { kind: 'unknown', tokenSeen: false, problem: 'TOKEN_UNREACHABLE' };
    try {
      const keks = this.listKeks();
      if (kekId === undefined) {
        if (keks.length > 1) throw this.ambiguous(keks);
        return keks[0] ? { kind: 'kek', kek: keks[0] } : { kind: 'kekAbsent' };
      }
      const kek = keks.find((k) => k.id === kekId.toLowerCase());
      if (kek) return { kind: 'kek', kek };
      return keks.length === 0 ? { kind: 'kekAbsent' } : { kind: 'final', probe: { moduleLoaded: true, tokenPresent: true, kek: null } };
    } catch (error) {
      const problem = codeOf(error);
      return TRANSIENT_PROBLEMS.has(problem) ? { kind: 'unknown', tokenSeen: true, problem } : { kind: 'final', probe: { moduleLoaded: true, tokenPresent: true, kek: null, problem } };
    }
  }

  /**
   * Runs fn in a logged-in read-write session. One session per token is kept open and logged in
   * for the process (C_Login is most of an unwrap's cost); it is used again only while the token
   * says it is still open and logged in, and only with the same PIN source and the same PIN (read
   * again each time). A session the token closed or logged out under fn is dropped and the call
   * made once more on a fresh one; any other failure closes it too. Rescans once if the slot went
   * stale or did not answer.
   */
  withSession<T>(fn: (api: pkcs11js.PKCS11, session: pkcs11js.Handle) => T): T {
    const module = this.module();
    const kept = module.sessions.get(this.config.tokenLabel);
    if (kept) {
      const pin = readPin(this.config.pin);
      if (kept.pinSource === describePinSource(this.config.pin) && timingSafeEqual(kept.pinTag, pinTag(pin)) && loggedIn(module.api, kept.session)) {
        try {
          return fn(module.api, kept.session);
        } catch (error) {
          dropSession(module, this.config.tokenLabel, kept, false);
          if (!SESSION_GONE.has(pkcs11Code(error) ?? pkcs11Code((error as Error | undefined)?.cause) ?? 0)) throw error;
        }
      } else {
        // Another PIN (or none that works any more): log out, so the next C_Login checks the PIN given.
        dropSession(module, this.config.tokenLabel, kept, true);
      }
    }
    return this.freshSession(module, fn);
  }

  private freshSession<T>(module: Pkcs11Module, fn: (api: pkcs11js.PKCS11, session: pkcs11js.Handle) => T): T {
    let scan = module.scanForToken(this.config.tokenLabel);
    if (!scan.found) {
      module.refresh();
      scan = module.scanForToken(this.config.tokenLabel);
    }
    if (!scan.found) {
      if (scan.unknown !== null) {
        throw new KeyCustodyError('TOKEN_UNREACHABLE', `the token labelled "${this.config.tokenLabel}" in ${this.config.modulePath} could not be read: ${scan.unknown}`);
      }
      throw new KeyCustodyError('TOKEN_MISSING', `no token labelled "${this.config.tokenLabel}" in ${this.config.modulePath}`);
    }
    const slot = scan.slot;
    const api = module.api;
    let session: pkcs11js.Handle;
    try {
      session = api.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    } catch (error) {
      throw mapPkcs11Error(error, `opening a session on token "${this.config.tokenLabel}"`);
    }
    let keep = false;
    try {
      const pin = readPin(this.config.pin);
      try {
        api.C_Login(session, pkcs11js.CKU_USER, pin);
      } catch (error) {
        if (pkcs11Code(error) !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) {
          throw mapPkcs11Error(error, `logging in to token "${this.config.tokenLabel}"`);
        }
      }
      const result = fn(api, session);
      module.sessions.set(this.config.tokenLabel, { slot, session, pinSource: describePinSource(this.config.pin), pinTag: pinTag(pin) });
      keep = true;
      return result;
    } finally {
      if (!keep) {
        try {
          api.C_CloseSession(session);
        } catch {
          // The token went away under the session; nothing left to close.
        }
      }
    }
  }

  /** Every secret key carrying the KEK label, with its CKA_ID: two of them while a KEK rotation runs. */
  private kekCandidates(api: pkcs11js.PKCS11, session: pkcs11js.Handle): Array<{ handle: pkcs11js.Handle; id: WrappingKeyId }> {
    api.C_FindObjectsInit(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_LABEL, value: this.config.kekLabel },
    ]);
    const handles: pkcs11js.Handle[] = [];
    try {
      for (let batch = api.C_FindObjects(session, 16); batch.length > 0; batch = api.C_FindObjects(session, 16)) handles.push(...batch);
    } finally {
      api.C_FindObjectsFinal(session);
    }
    return handles.map((handle) => ({ handle, id: this.identityOf(api, session, handle) }));
  }

  /**
   * The KEK's handle. With a CKA_ID (hex), the key with the label and that id, or null; without one,
   * the only key with the label, or null, and KEK_AMBIGUOUS when several carry it (a rotation under way:
   * the caller must say which).
   */
  findKekHandle(api: pkcs11js.PKCS11, session: pkcs11js.Handle, kekId?: string): pkcs11js.Handle | null {
    const candidates = this.kekCandidates(api, session);
    if (kekId !== undefined) return candidates.find((c) => c.id.id === kekId.toLowerCase())?.handle ?? null;
    if (candidates.length > 1) throw this.ambiguous(candidates.map((c) => c.id));
    return candidates[0]?.handle ?? null;
  }

  /** The KEK's identity (the one with this CKA_ID, or the only one), or null; see findKekHandle. */
  findKekId(kekId?: string): WrappingKeyId | null {
    return this.withSession((api, session) => {
      const handle = this.findKekHandle(api, session, kekId);
      return handle === null ? null : this.identityOf(api, session, handle);
    });
  }

  /** Every key carrying the KEK label (label and CKA_ID), in the token's order. */
  listKeks(): WrappingKeyId[] {
    return this.withSession((api, session) => this.kekCandidates(api, session).map((c) => c.id));
  }

  /**
   * The KEK with this CKA_ID, or the only one. None with the label: KEK_MISSING; keys with the label
   * but none with this id: KEK_REPLACED (the KEK that wrapped was destroyed or swapped); several and
   * no id: KEK_AMBIGUOUS.
   */
  requireKek(api: pkcs11js.PKCS11, session: pkcs11js.Handle, kekId?: string): { handle: pkcs11js.Handle; id: WrappingKeyId } {
    const candidates = this.kekCandidates(api, session);
    if (candidates.length === 0) {
      throw new KeyCustodyError('KEK_MISSING', `no key labelled "${this.config.kekLabel}" on token "${this.config.tokenLabel}"`);
    }
    if (kekId === undefined) {
      if (candidates.length > 1) throw this.ambiguous(candidates.map((c) => c.id));
      return candidates[0]!;
    }
    const match = candidates.find((c) => c.id.id === kekId.toLowerCase());
    if (match) return match;
    const found = candidates.map((c) => c.id.id || '(none)').join(', ');
    throw new KeyCustodyError(
      'KEK_REPLACED',
      `no key labelled "${this.config.kekLabel}" on token "${this.config.tokenLabel}" has CKA_ID ${kekId}: that KEK was destroyed or replaced (CKA_ID found: ${found})`,
    );
  }

  private ambiguous(ids: WrappingKeyId[]): KeyCustodyError {
    return new KeyCustodyError(
      'KEK_AMBIGUOUS',
      `${ids.length} keys are labelled "${this.config.kekLabel}" on token "${this.config.tokenLabel}" (CKA_ID ${ids.map((i) => i.id || '(none)').join(', ')}); name the KEK by its CKA_ID`,
    );
  }

  /** Generates the KEK inside the token; refuses when a key carries the label already (the set-up makes exactly one). */
  generateKek(): WrappingKeyId {
    return this.withSession((api, session) => {
      if (this.kekCandidates(api, session).length > 0) {
        throw new KeyCustodyError('KEK_EXISTS', `a key labelled "${this.config.kekLabel}" already exists on token "${this.config.tokenLabel}"`);
      }
      return this.generateUnder(api, session);
    });
  }

  /**
   * Generates one more KEK under the label, with a new random CKA_ID, whatever keys carry the label
   * already: the new KEK of a rotation. Not idempotent: a caller that may run again after a crash
   * first looks (listKeks) for a KEK that no stored wrap references and uses that one instead.
   */
  generateAdditionalKek(): WrappingKeyId {
    return this.withSession((api, session) => this.generateUnder(api, session));
  }

  /** AES-256 made inside the token: sensitive, never extractable, wrap and unwrap only. */
  private generateUnder(api: pkcs11js.PKCS11, session: pkcs11js.Handle): WrappingKeyId {
    const id = randomBytes(16);
    try {
      api.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
        { type: pkcs11js.CKA_LABEL, value: this.config.kekLabel },
        { type: pkcs11js.CKA_ID, value: id },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_MODIFIABLE, value: false },
        { type: pkcs11js.CKA_WRAP, value: true },
        { type: pkcs11js.CKA_UNWRAP, value: true },
        { type: pkcs11js.CKA_ENCRYPT, value: false },
        { type: pkcs11js.CKA_DECRYPT, value: false },
        { type: pkcs11js.CKA_SIGN, value: false },
        { type: pkcs11js.CKA_VERIFY, value: false },
      ]);
    } catch (error) {
      throw mapPkcs11Error(error, `generating a KEK on token "${this.config.tokenLabel}"`);
    }
    return { label: this.config.kekLabel, id: id.toString('hex') };
  }

  /**
   * Removes the key with the KEK label and this CKA_ID, whatever other keys carry the label; nothing
   * when there is none (safe to run again). A key with another label is never touched.
   */
  destroyKek(id: WrappingKeyId): void {
    this.withSession((api, session) => {
      for (const candidate of this.kekCandidates(api, session)) {
        if (candidate.id.id === id.id.toLowerCase()) this.destroyHandle(api, session, candidate);
      }
    });
  }

  /**
   * Removes every key with the KEK label except the one with this CKA_ID (finishing a rotation, or
   * rolling one back) and returns what it removed. Refuses, removing nothing, when that KEK is absent.
   */
  destroyKeksExcept(keepId: WrappingKeyId): WrappingKeyId[] {
    return this.withSession((api, session) => {
      const candidates = this.kekCandidates(api, session);
      const keep = keepId.id.toLowerCase();
      if (!candidates.some((c) => c.id.id === keep)) {
        throw new KeyCustodyError('KEK_MISSING', `no key labelled "${this.config.kekLabel}" with CKA_ID ${keepId.id} on token "${this.config.tokenLabel}"; no KEK was removed`);
      }
      const removed: WrappingKeyId[] = [];
      for (const candidate of candidates) {
        if (candidate.id.id === keep) continue;
        this.destroyHandle(api, session, candidate);
        removed.push(candidate.id);
      }
      return removed;
    });
  }

  private destroyHandle(api: pkcs11js.PKCS11, session: pkcs11js.Handle, kek: { handle: pkcs11js.Handle; id: WrappingKeyId }): void {
    try {
      api.C_DestroyObject(session, kek.handle);
    } catch (error) {
      throw mapPkcs11Error(error, `removing the KEK "${kek.id.label}" (CKA_ID ${kek.id.id}) from token "${this.config.tokenLabel}"`);
    }
  }

  /**
   * Refuses, changing nothing, a new user PIN outside the token's length limits (PIN_TOO_LONG or
   * PIN_TOO_SHORT, naming the limits). Reads the token information only: no login.
   */
  checkNewUserPin(newPin: string): void {
    if (newPin.length === 0 || /[\r\n]/.test(newPin)) {
      // A PIN file holds one line: a line break could not be read back as the same PIN.
      throw new KeywardError('INVALID_INPUT', 'the new user PIN is empty or holds a line break; nothing was changed');
    }
    const module = this.module();
    const slot = module.findSlot(this.config.tokenLabel);
    if (slot === null) throw new KeyCustodyError('TOKEN_MISSING', `no token labelled "${this.config.tokenLabel}" in ${this.config.modulePath}`);
    let limits: PinLimits;
    try {
      limits = readPinLimits(module.api, slot);
    } catch (error) {
      throw mapPkcs11Error(error, `reading the PIN limits of token "${this.config.tokenLabel}"`);
    }
    const problem = checkPinLength(newPin, limits, 'new user PIN');
    if (problem) throw new KeyCustodyError(problem.code, `${problem.message}; nothing was changed`);
  }

  /**
   * C_SetPIN from the PIN the token's source holds now to newPin, in a logged-in user session, after
   * checkNewUserPin. The kept session is ended afterwards: the next withSession logs in with what the
   * source holds then, so the caller puts newPin there first (hsm/pin-change.ts does, crash-safe).
   */
  changeUserPin(newPin: string): void {
    this.checkNewUserPin(newPin);
    this.withSession((api, session) => {
      try {
        api.C_SetPIN(session, readPin(this.config.pin), newPin);
      } catch (error) {
        throw mapSetPinError(error, `changing the user PIN of token "${this.config.tokenLabel}"`);
      }
    });
    const module = this.module();
    const kept = module.sessions.get(this.config.tokenLabel);
    if (kept) dropSession(module, this.config.tokenLabel, kept, true);
  }

  /** The KEK, generated if there is none: safe to run again after a crash. */
  ensureKek(): WrappingKeyId {
    const existing = this.findKekId();
    return existing ?? this.generateKek();
  }

  private identityOf(api: pkcs11js.PKCS11, session: pkcs11js.Handle, handle: pkcs11js.Handle): WrappingKeyId {
    const [id] = api.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_ID }]);
    const value = id?.value;
    return { label: this.config.kekLabel, id: Buffer.isBuffer(value) ? value.toString('hex') : '' };
  }
}

/** Translates a Cryptoki return value into keyward's error codes; `doing` says what was attempted. */
export function mapPkcs11Error(error: unknown, doing: string): KeyCustodyError {
  if (isKeyCustodyError(error)) return error;
  const code = pkcs11Code(error);
  const detail = `${doing} failed: ${explainPkcs11Error(error)}`;
  switch (code) {
    case pkcs11js.CKR_PIN_INCORRECT:
    case pkcs11js.CKR_PIN_LEN_RANGE:
      return new KeyCustodyError('WRONG_PIN', `${doing} failed: the PIN was rejected`);
    case pkcs11js.CKR_PIN_LOCKED:
      return new KeyCustodyError('PIN_LOCKED', `${doing} failed: the user PIN is locked on the token`);
    case pkcs11js.CKR_USER_PIN_NOT_INITIALIZED:
      return new KeyCustodyError('WRONG_PIN', `${doing} failed: the token has no user PIN set`);
    case pkcs11js.CKR_MECHANISM_INVALID:
    case pkcs11js.CKR_MECHANISM_PARAM_INVALID:
    case pkcs11js.CKR_FUNCTION_NOT_SUPPORTED:
    case pkcs11js.CKR_KEY_TYPE_INCONSISTENT:
      return new KeyCustodyError('MECHANISM_UNSUPPORTED', `${doing} failed: the token does not support the mechanism (${explainPkcs11Error(error)})`);
    case pkcs11js.CKR_TOKEN_NOT_PRESENT:
    case pkcs11js.CKR_TOKEN_NOT_RECOGNIZED:
    case pkcs11js.CKR_DEVICE_REMOVED:
    case pkcs11js.CKR_SLOT_ID_INVALID:
    case pkcs11js.CKR_SESSION_HANDLE_INVALID:
      return new KeyCustodyError('TOKEN_MISSING', detail, { cause: error });
    case pkcs11js.CKR_DEVICE_ERROR:
    case pkcs11js.CKR_DEVICE_MEMORY:
      return new KeyCustodyError('TOKEN_UNREACHABLE', detail, { cause: error });
    default:
      return new KeyCustodyError('PKCS11_ERROR', detail, { cause: error });
  }
}

/** C_SetPIN's answers about the new PIN; about the old one (CKR_PIN_INCORRECT, locked) it says what a login says. */
function mapSetPinError(error: unknown, doing: string): KeyCustodyError {
  switch (pkcs11Code(error)) {
    case pkcs11js.CKR_PIN_LEN_RANGE:
      return new KeyCustodyError('PKCS11_ERROR', `${doing} failed: the token refused the new PIN's length although it is within the limits the token states (CKR_PIN_LEN_RANGE); nothing was changed`, {
        cause: error,
      });
    case pkcs11js.CKR_PIN_INVALID:
      return new KeyCustodyError('PKCS11_ERROR', `${doing} failed: the token refused characters of the new PIN (CKR_PIN_INVALID); nothing was changed`, { cause: error });
    default:
      return mapPkcs11Error(error, doing);
  }
}

function codeOf(error: unknown): string {
  return isKeyCustodyError(error) ? error.code : 'PKCS11_ERROR';
}
