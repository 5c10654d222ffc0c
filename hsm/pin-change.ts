import { accessSync, constants, existsSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as pkcs11js from 'pkcs11js';
import { syncDirectory, writeFileDurably } from '../db/durable-file';
import { isKeyCustodyError, KeyCustodyError } from '../errors/key-custody-error';
import { describePinSource, PinSource, readPin } from './pin-source';
import { Pkcs11Module } from './pkcs11-module';
import { Pkcs11Token } from './pkcs11-token';

/**
 * Changing the token's user PIN when keyward keeps it in a file. C_SetPIN and the file cannot change
 * together, so the new PIN is first staged durably beside the file (`<file>.next`), then set on the
 * token, then renamed over the file. A crash leaves one of two states, told apart at the next start-up
 * by which of the two PINs logs in (recoverPinChange).
 */

export type PinChangeCheckpoint = 'pin-staged' | 'pin-set';

/** What recoverPinChange did: nothing to do, a staged PIN that was never set removed, or a set one put in place. */
export type PinRecovery = 'none' | 'discarded' | 'completed';

export interface PinChangeRequest {
  /** The token whose user PIN changes; its PIN source must be pinSource. */
  token: Pkcs11Token;
  pinSource: PinSource;
  newPin: string;
  /** Awaited after each durable step (the lifecycle's crash points). */
  checkpoint?: (point: PinChangeCheckpoint) => Promise<void> | void;
}

/** Where the new PIN waits while it is set on the token. */
export function stagedPinFile(pinFile: string): string {
  return `${pinFile}.next`;
}

/**
 * Sets newPin as the token's user PIN and as the content of the PIN file. Refuses, changing nothing,
 * a PIN from the environment, a PIN file or directory keyward cannot write, and a PIN outside the
 * token's limits. Safe to run again after a crash at any point: a change left half-done is settled
 * first (recoverPinChange), and a file that already holds newPin and logs in is left as it is.
 * Returns 'unchanged' in that last case.
 */
export async function changeTokenPin(request: PinChangeRequest): Promise<'changed' | 'unchanged'> {
  const { token, pinSource, newPin } = request;
  const file = writablePinFile(pinSource);
  if (describePinSource(token.config.pin) !== describePinSource(pinSource)) {
    throw new Error(`the token reads its PIN from ${describePinSource(token.config.pin)}, not from ${describePinSource(pinSource)}`);
  }
  token.checkNewUserPin(newPin);
  await recoverPinChange({ token, pinSource });
  if (readPin(pinSource) === newPin) {
    token.withSession(() => undefined);
    return 'unchanged';
  }
  writeFileDurably(stagedPinFile(file), `${newPin}\n`);
  await request.checkpoint?.('pin-staged');
  try {
    token.changeUserPin(newPin);
  } catch (error) {
    // A refusal changed nothing on the token: the staging goes with it. Any other failure (the token
    // went away during the call) may have set the PIN: the staging stays for recoverPinChange.
    if (isKeyCustodyError(error) && REFUSALS.has(error.code)) discardStaged(file);
    throw error;
  }
  await request.checkpoint?.('pin-set');
  commitStaged(file);
  return 'changed';
}

/**
 * Settles a PIN change a crash interrupted; run at every start-up before the first login. With a
 * staged PIN beside the file: if the file's PIN logs in, C_SetPIN never happened and the staged PIN is
 * removed; if the token refuses it as wrong, C_SetPIN did happen and the staged PIN, once it logs in,
 * replaces the file. Within the protocol one of the two is right, so at most one wrong login is spent;
 * the staged PIN is not tried when the token says its next wrong login locks the PIN. When neither
 * logs in, both files stay and WRONG_PIN says so. Never logs or returns a PIN.
 */
export async function recoverPinChange(options: { token: Pkcs11Token; pinSource: PinSource }): Promise<PinRecovery> {
  const { token, pinSource } = options;
  if (!('file' in pinSource)) return 'none';
  const file = pinSource.file;
  const staged = stagedPinFile(file);
  removeTornStagings(file);
  if (!existsSync(staged)) return 'none';

  const logsIn = (source: PinSource): boolean | 'missing' => {
    try {
      new Pkcs11Token({ ...token.config, pin: source }).withSession(() => undefined);
      return true;
    } catch (error) {
      if (isKeyCustodyError(error, 'PIN_MISSING')) return 'missing';
      if (isKeyCustodyError(error, 'WRONG_PIN')) return false;
      throw error;
    }
  };
  const current = logsIn(pinSource);
  if (current === true) {
    discardStaged(file);
    return 'discarded';
  }
  if (current === false && finalTry(token)) {
    throw new KeyCustodyError('WRONG_PIN', `the PIN in ${file} was refused and the token's next wrong login would lock its user PIN: the staged PIN in ${staged} was not tried; both files were kept`);
  }
  if (current === false && samePin(pinSource, { file: staged })) {
    throw new KeyCustodyError('WRONG_PIN', `the PIN in ${file} was refused and ${staged} holds the same PIN; both files were kept`);
  }
  const next = logsIn({ file: staged });
  if (next === true) {
    commitStaged(file);
    return 'completed';
  }
  throw new KeyCustodyError(
    'WRONG_PIN',
    `neither the PIN in ${file} nor the staged PIN in ${staged} logs in to token "${token.config.tokenLabel}" (was the PIN changed outside keyward?); both files were kept`,
  );
}

/** Refuses, before anything changes, a PIN source keyward cannot rewrite; the PIN file's path otherwise. */
function writablePinFile(pinSource: PinSource): string {
  if (!('file' in pinSource)) {
    throw new KeyCustodyError(
      'PIN_SOURCE_READ_ONLY',
      `the token PIN comes from the environment variable ${pinSource.env}, which keyward cannot change: change the user PIN with the token's own tools (for example pkcs11-tool --change-pin) and then update the orchestrator's secret that sets ${pinSource.env}; nothing was changed`,
    );
  }
  const file = pinSource.file;
  readPin(pinSource);
  try {
    accessSync(file, constants.R_OK | constants.W_OK);
    // The staged file is made in the directory and renamed there.
    accessSync(dirname(file), constants.W_OK | constants.X_OK);
  } catch (error) {
    throw new KeyCustodyError('PIN_SOURCE_READ_ONLY', `keyward cannot write the PIN file ${file} or its directory, so it cannot change the PIN it holds; nothing was changed`, { cause: error });
  }
  return file;
}

/** Failures of changeUserPin that leave the token's PIN as it was. */
const REFUSALS = new Set(['WRONG_PIN', 'PIN_LOCKED', 'PIN_MISSING', 'PIN_TOO_LONG', 'PIN_TOO_SHORT']);

function discardStaged(file: string): void {
  unlinkSync(stagedPinFile(file));
  syncDirectory(dirname(file));
}

/** The staged PIN becomes the PIN file, durably (the rename flushed with the directory). */
function commitStaged(file: string): void {
  renameSync(stagedPinFile(file), file);
  syncDirectory(dirname(file));
}

/** writeFileDurably's temporary copies of a staging a crash cut short: each holds the new PIN. */
function removeTornStagings(file: string): void {
  const prefix = `${basename(stagedPinFile(file))}.`;
  let removed = false;
  for (const name of readdirSync(dirname(file))) {
    if (name.startsWith(prefix) && /^\d+\.tmp$/.test(name.slice(prefix.length))) {
      unlinkSync(join(dirname(file), name));
      removed = true;
    }
  }
  if (removed) syncDirectory(dirname(file));
}

function samePin(a: PinSource, b: PinSource): boolean {
  try {
    return readPin(a) === readPin(b);
  } catch {
    return false;
  }
}

/** Whether the token says its next wrong user login locks the PIN. */
function finalTry(token: Pkcs11Token): boolean {
  const module = Pkcs11Module.open(token.config.modulePath);
  const slot = module.findSlot(token.config.tokenLabel);
  if (slot === null) return false;
  return (module.api.C_GetTokenInfo(slot).flags & pkcs11js.CKF_USER_PIN_FINAL_TRY) !== 0;
}
