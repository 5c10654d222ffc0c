import { existsSync } from 'node:fs';
import * as pkcs11js from 'pkcs11js';
import { KeyCustodyError } from '../errors/key-custody-error';

/**
 * A loaded PKCS#11 library, one per module path for the whole process: pkcs11js cannot
 * initialize the same library twice, and finalizing one instance breaks the others.
 */
export class Pkcs11Module {
  private static readonly loaded = new Map<string, Pkcs11Module>();

  static open(modulePath: string): Pkcs11Module {
    const existing = Pkcs11Module.loaded.get(modulePath);
    if (existing) return existing;
    if (!existsSync(modulePath)) {
      throw new KeyCustodyError('MODULE_MISSING', `PKCS#11 module ${modulePath} does not exist`);
    }
    const api = new pkcs11js.PKCS11();
    try {
      api.load(modulePath);
      initialize(api);
    } catch (error) {
      throw new KeyCustodyError('MODULE_LOAD_FAILED', `PKCS#11 module ${modulePath} failed to load: ${describe(error)}`, {
        cause: error,
      });
    }
    const module = new Pkcs11Module(modulePath, api);
    Pkcs11Module.loaded.set(modulePath, module);
    return module;
  }

  /** The logged-in session kept per token label (Pkcs11Token.withSession); every one ends at refresh(). */
  readonly sessions = new Map<string, KeptSession>();

  private constructor(
    readonly path: string,
    readonly api: pkcs11js.PKCS11,
  ) {}

  /**
   * Re-reads the module's view of its tokens. Libraries such as SoftHSM2 scan their tokens only at
   * C_Initialize, so a token created or deleted by another process is seen only after this.
   * Every session of this module is closed by it.
   */
  refresh(): void {
    this.sessions.clear();
    try {
      this.api.C_Finalize();
    } catch {
      // Not initialized: initializing below is all that is needed.
    }
    initialize(this.api);
  }

  /**
   * One scan of the slots for the token with this label. A slot whose token information cannot be
   * read may be that token (a file being rewritten by another process, a device that hiccuped): the
   * answer is then "unknown", never "absent".
   */
  scanForToken(label: string): TokenScan {
    const matches: pkcs11js.Handle[] = [];
    let unreadable: string | null = null;
    for (const slot of this.api.C_GetSlotList(true)) {
      try {
        if (this.api.C_GetTokenInfo(slot).label.trim() === label) matches.push(slot);
      } catch (error) {
        unreadable = describe(error);
      }
    }
    if (matches.length > 1) {
      throw new KeyCustodyError('PKCS11_ERROR', `more than one token is labelled "${label}"; labels must be unique`);
    }
    if (matches[0] !== undefined) return { found: true, slot: matches[0] };
    return unreadable === null ? { found: false, unknown: null } : { found: false, unknown: unreadable };
  }

  /**
   * The slot holding the token with this label, or null when every slot was read and none holds it.
   * Slot ids are not stable; labels are. A slot that could not be read throws TOKEN_UNREACHABLE.
   */
  findSlot(label: string): pkcs11js.Handle | null {
    const scan = this.scanForToken(label);
    if (scan.found) return scan.slot;
    if (scan.unknown !== null) {
      throw new KeyCustodyError('TOKEN_UNREACHABLE', `the token labelled "${label}" could not be looked for: a slot did not answer (${scan.unknown})`);
    }
    return null;
  }
}

/** A session left open and logged in, and with which PIN: a source's description and a keyed hash of the PIN. */
export interface KeptSession {
  slot: pkcs11js.Handle;
  session: pkcs11js.Handle;
  pinSource: string;
  pinTag: Buffer;
}

/** One slot scan: the token's slot, or not found and whether some slot could not be read (why). */
export type TokenScan = { found: true; slot: pkcs11js.Handle } | { found: false; unknown: string | null };

/** An earlier instance in this process (a reloaded module graph) may have left the library initialized. */
function initialize(api: pkcs11js.PKCS11): void {
  try {
    api.C_Initialize();
  } catch (error) {
    if (pkcs11Code(error) !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw error;
    api.C_Finalize();
    api.C_Initialize();
  }
}

export function pkcs11Code(error: unknown): number | undefined {
  return error instanceof pkcs11js.Pkcs11Error ? error.code : undefined;
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
