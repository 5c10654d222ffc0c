import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { doubleCsrf } from 'csrf-csrf';
import type { Request, RequestHandler, Response } from 'express';
import type { WebSecretRepository } from '../../db/repositories/web-secret-repository';
import { newWebSecretValue } from '../../db/repositories/web-secret-repository';
import type { Phase } from './lifecycle-phase';
import type { Logger } from './logger';
import { loggableError } from './web-errors';

export const CSRF_COOKIE = '__Host-keyward-csrf';
export const CSRF_FIELD = '_csrf';
/** The CSRF key's name in web_secrets. */
export const CSRF_KEY_NAME = 'csrf-hmac-key';
/** A failed check reads the database again at most this often (another node may have replaced the key). */
const REFRESH_AFTER_FAILURE_MS = 1000;

export interface Csrf {
  /** Checks every POST (and any other unsafe method); a failure is a 403 that changes nothing. */
  protect: RequestHandler;
  /** The token for the forms of this response: the one the browser holds, or a new one in a new cookie. */
  token(req: Request, res: Response): string;
}

export interface CsrfKeyOptions {
  /** The 0600 file an earlier keyward kept the key in: its key moves into the database, the file goes. */
  legacyFile: string;
  /** The lifecycle's phase as this process last read it (null before the first reading). */
  phase: () => Phase | null;
  /** Loads the DEK from the token if this process has none yet (a replica that did not create it). */
  loadDek: () => Promise<void>;
  logger: Logger;
}

/**
 * The CSRF HMAC key, one for every process on the database (web_secrets), so that a form served by
 * one node posts to another. Sealed under the DEK once one exists; plaintext before (the wizard's
 * first steps, software storage), and replaced by a new sealed key where the DEK is created. A node
 * that cannot open the sealed key (its token unreachable) signs with a key of its own meanwhile; in
 * auto-restore, where no node can open it, the key is replaced by a plaintext one until the DEK is
 * recovered.
 */
export class SharedCsrfKey {
  private keys: string[] = [];
  private legacyKey: string | null = null;
  private lastRefresh = 0;
  private refreshing: Promise<boolean> | null = null;

  constructor(
    private readonly secrets: WebSecretRepository,
    private readonly options: CsrfKeyOptions,
  ) {}

  /** The keys forms are checked with; the first signs new forms. */
  get current(): string[] {
    if (this.keys.length === 0) throw new Error('the CSRF key has not been loaded');
    return this.keys;
  }

  /**
   * Reads the shared key (making it if there is none) and takes it; `loadDek`: may load the DEK to
   * open it. Returns true when the key this process signs with changed.
   */
  async load({ loadDek }: { loadDek: boolean }): Promise<boolean> {
    this.legacyKey ??= readLegacy(this.options.legacyFile);
    let triedDek = !loadDek;
    for (let attempt = 0; attempt < 8; attempt++) {
      const reading = await this.secrets.read(CSRF_KEY_NAME);
      if (reading.state === 'missing') {
        const made = await this.secrets.create(CSRF_KEY_NAME, this.legacyKey ?? newWebSecretValue());
        if (made) this.options.logger.info(this.legacyKey ? `the CSRF key of ${this.options.legacyFile} moved into the database` : 'a new CSRF key is stored in the database');
        continue;
      }
      if (reading.state === 'open') {
        const phase = this.options.phase();
        // Plaintext under HSM storage with the DEK here: replaced by a sealed key (not in auto-restore,
        // where the nodes without the DEK need a key they can read).
        if (!reading.sealed && phase !== 'autoRestore' && (await this.secrets.seals())) {
          await this.secrets.replace(CSRF_KEY_NAME, reading.stored, newWebSecretValue());
          continue;
        }
        return this.adopt(reading.value, true, !reading.sealed);
      }
      if (!triedDek) {
        triedDek = true;
        await this.options.loadDek().catch((error: unknown) => this.options.logger.warn({ error: loggableError(error) }, 'the DEK could not be loaded to open the CSRF key'));
        continue;
      }
      if (this.options.phase() === 'autoRestore') {
        await this.secrets.replace(CSRF_KEY_NAME, reading.stored, newWebSecretValue());
        continue;
      }
      if (this.keys.length === 0) {
        this.options.logger.warn({ reason: reading.reason }, 'the CSRF key is sealed under a DEK this process cannot load: its forms post only to itself until it can');
        return this.adopt(randomBytes(32).toString('hex'), false);
      }
      return false;
    }
    throw new Error('the CSRF key kept changing while it was read');
  }

  /**
   * After a failed check: the key may have been replaced by another node. Reads at most once a second;
   * a check that fails while a reading is in progress waits for that reading.
   */
  async refresh(): Promise<boolean> {
    if (this.refreshing) return this.refreshing;
    if (Date.now() - this.lastRefresh < REFRESH_AFTER_FAILURE_MS) return false;
    this.lastRefresh = Date.now();
    this.refreshing = this.load({ loadDek: true }).finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  /**
   * `keepPrevious`: the key this node signed with until now still checks the forms it served before
   * the change — only when the new key is plaintext (auto-restore's interim key replacing the sealed
   * one: a page opened just before still posts). A new sealed key drops the old one, which may be a
   * plaintext key a dump holds.
   */
  private adopt(key: string, shared = true, keepPrevious = false): boolean {
    const changed = this.keys[0] !== key;
    const previous = keepPrevious ? (changed ? this.keys[0] : this.keys[1]) : undefined;
    // An earlier keyward's file key still checks the forms this node served before the upgrade.
    this.keys = [...new Set([key, previous, this.legacyKey].filter((k): k is string => !!k))];
    if (shared) rmSync(this.options.legacyFile, { force: true });
    return changed;
  }
}

function readLegacy(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim() || null;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** What the CSRF check needs of the key: the keys forms are checked with, and a fresh reading after a failure. */
export type CsrfKeys = Pick<SharedCsrfKey, 'current' | 'refresh'>;

/** csrf-csrf's ignored methods: they change nothing. */
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Held tokens already found valid, per key set: at most this many before the record starts afresh. */
const CHECKED_TOKENS = 10_000;

/**
 * csrf-csrf's signed double-submit tokens, bound to the session id: the token in the form must equal
 * the one in an HttpOnly __Host- cookie and carry an HMAC over this session's id.
 */
export function createCsrf(key: CsrfKeys): Csrf {
  const { doubleCsrfProtection, generateCsrfToken, invalidCsrfTokenError, validateRequest } = doubleCsrf({
    getSecret: () => key.current,
    getSessionIdentifier: (req) => req.keyward?.sessionId ?? '',
    cookieName: CSRF_COOKIE,
    cookieOptions: { sameSite: 'strict', secure: true, httpOnly: true, path: '/' },
    getCsrfTokenFromRequest: (req) => {
      const body = req.body as Record<string, unknown> | undefined;
      const fromBody = body && typeof body === 'object' ? body[CSRF_FIELD] : undefined;
      return typeof fromBody === 'string' ? fromBody : req.headers['x-csrf-token'];
    },
  });
  const protect: RequestHandler = (req, res, next) =>
    // A read changes nothing: csrf-csrf would let it by too.
    READS.has(req.method)
      ? next()
      : doubleCsrfProtection(req, res, (error?: unknown) => {
          if (error !== invalidCsrfTokenError) return next(error);
          // Signed by another node with a key this one has not read yet: read it, check once more.
          key.refresh().then(
            (changed) => (changed ? doubleCsrfProtection(req, res, next) : next(error)),
            (failure: unknown) => next(failure),
          );
        });
  // A page opened again shows the token the browser holds: its HMAC is computed once per session and
  // key set, not on every page. Only the choice of the page's token rests on this record; a form
  // posted is checked in full (protect).
  let checkedUnder: readonly string[] | null = null;
  const checked = new Set<string>();
  /** The token in the request's cookie, if it is this session's under a current key: checked as a form posting it would be. */
  const heldToken = (req: Request): string | null => {
    const held = (req.cookies as Record<string, unknown> | undefined)?.[CSRF_COOKIE];
    if (typeof held !== 'string') return null;
    // Loading the key makes a new key set, even when it holds the same keys.
    if (key.current !== checkedUnder) {
      checked.clear();
      checkedUnder = key.current;
    }
    const entry = `${req.keyward?.sessionId ?? ''}\0${held}`;
    if (checked.has(entry)) return held;
    const posting = { method: 'POST', cookies: req.cookies as unknown, headers: { 'x-csrf-token': held }, body: undefined, keyward: req.keyward };
    if (!validateRequest(posting as unknown as Request)) return null;
    if (checked.size >= CHECKED_TOKENS) checked.clear();
    checked.add(entry);
    return held;
  };
  // A browser that holds a valid token gets no cookie again (csrf-csrf would send the same one on every page).
  return { protect, token: (req, res) => heldToken(req) ?? generateCsrfToken(req, res, { overwrite: true }) };
}
