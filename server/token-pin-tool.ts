/**
 * The PIN-bearing steps of scripts/wizard_setup_hsm.sh. pkcs11-tool takes a PIN only as an argument
 * or from its environment, and other processes read both (ps, /proc/PID/environ); this tool reads
 * the PINs from the files named by KW_PIN_FILE and KW_SO_PIN_FILE (paths, not secrets), so no
 * process's arguments or environment ever hold one. It starts no process of its own.
 *
 *   node token-pin-tool.js MODULE check-pins SLOT_ID         check both PINs' lengths, change nothing
 *   node token-pin-tool.js MODULE make-token SLOT_ID LABEL   initialize a free slot's token (its serial on stdout), set its user PIN
 *   node token-pin-tool.js MODULE login LABEL                prove that the user PIN logs in
 *
 * Each checks the PINs' lengths against the token's own limits before it touches the token. Exit codes by
 * name from scripts/exit-codes.tsv, with one line "wizard_setup_hsm: NAME: detail" on stderr.
 */
import { join } from 'node:path';
import * as pkcs11js from 'pkcs11js';
import { loadScriptExitCodes } from '../effects/script-exit-codes';
import { isKeyCustodyError } from '../errors/key-custody-error';
import { readPin } from '../hsm/pin-source';
import { Pkcs11Module, describe, pkcs11Code, type TokenScan } from '../hsm/pkcs11-module';
import { initializeToken, TokenInitError } from '../hsm/token-init';
import { checkPinLength, readPinLimits } from '../hsm/token-pin-limits';
import { PROJECT_ROOT } from './config';
import { KeywardError, scriptErrorCode } from '../errors/keyward-error';

/** `script` is the failure's name in scripts/exit-codes.tsv, which this tool exits by. */
class Failure extends KeywardError {
  constructor(
    readonly script: string,
    readonly detail: string,
  ) {
    super(scriptErrorCode(script), detail);
  }
}

function pinFrom(variable: 'KW_PIN_FILE' | 'KW_SO_PIN_FILE'): string {
  const file = process.env[variable];
  if (!file) throw new Failure('PIN_FILE_UNREADABLE', `${variable} is not set`);
  try {
    return readPin({ file });
  } catch (error) {
    throw new Failure('PIN_FILE_UNREADABLE', describe(error));
  }
}

function checkLengths(api: pkcs11js.PKCS11, slot: pkcs11js.Handle, pins: Array<[string, string]>): void {
  const limits = readPinLimits(api, slot);
  for (const [name, pin] of pins) {
    const problem = checkPinLength(pin, limits, name);
    if (problem) throw new Failure(problem.code, problem.detail);
  }
}

/** A slot handle is a CK_SLOT_ID in the host's byte order; pkcs11-tool prints the same number in hex. */
function slotId(handle: pkcs11js.Handle): bigint {
  return handle.length >= 8 ? handle.readBigUInt64LE(0) : BigInt(handle.readUInt32LE(0));
}

function slotById(api: pkcs11js.PKCS11, slotText: string): pkcs11js.Handle {
  if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(slotText)) throw new Failure('USAGE', `slot ${slotText} is not a slot id`);
  const slot = api.C_GetSlotList(false).find((s) => slotId(s) === BigInt(slotText));
  if (!slot) throw new Failure('NO_FREE_SLOT', `there is no slot ${slotText}`);
  return slot;
}

/** Both PINs against the limits of the token in a slot; nothing is changed. */
function checkPins(api: pkcs11js.PKCS11, slot: pkcs11js.Handle): { soPin: string; userPin: string } {
  const soPin = pinFrom('KW_SO_PIN_FILE');
  const userPin = pinFrom('KW_PIN_FILE');
  checkLengths(api, slot, [
    ['SO PIN', soPin],
    ['user PIN', userPin],
  ]);
  return { soPin, userPin };
}

function makeToken(api: pkcs11js.PKCS11, slotText: string, label: string): void {
  const slot = slotById(api, slotText);
  if (api.C_GetTokenInfo(slot).flags & pkcs11js.CKF_TOKEN_INITIALIZED) throw new Failure('NO_FREE_SLOT', `slot ${slotText} holds a token already`);
  const { soPin, userPin } = checkPins(api, slot);
  try {
    // The serial on stdout: the script removes this token, and no other, if a later step fails.
    initializeToken(api, slot, label, soPin, userPin, (serial) => process.stdout.write(`${serial}\n`));
  } catch (error) {
    if (!(error instanceof TokenInitError)) throw error;
    throw new Failure(error.step === 'init-token' ? 'INIT_TOKEN_FAILED' : 'INIT_PIN_FAILED', error.message);
  }
}

/** How often a token not seen is looked for again, and how long apart. */
const LOOKS = { again: 4, intervalMs: 300 };

/**
 * The slot of the token with this label. SoftHSM2 reads its tokens' files at C_Initialize and leaves
 * out one another process is rewriting at that moment (every login there rewrites its flags): a
 * token not seen, or a slot not read, is looked for again on a fresh scan before it counts as absent.
 */
function findToken(module: Pkcs11Module, label: string): pkcs11js.Handle {
  for (let looked = 0; ; looked++) {
    let scan: TokenScan;
    try {
      scan = module.scanForToken(label);
    } catch (error) {
      throw new Failure('LABEL_AMBIGUOUS', describe(error));
    }
    if (scan.found) return scan.slot;
    if (looked === LOOKS.again) throw new Failure('TOKEN_NOT_FOUND', label);
    process.stderr.write(`wizard_setup_hsm: token "${label}" not seen (${scan.unknown ?? 'no slot holds it'}); looking again\n`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, LOOKS.intervalMs);
    module.refresh();
  }
}

function login(module: Pkcs11Module, label: string): void {
  const slot = findToken(module, label);
  const pin = pinFrom('KW_PIN_FILE');
  checkLengths(module.api, slot, [['user PIN', pin]]);
  const session = module.api.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  try {
    module.api.C_Login(session, pkcs11js.CKU_USER, pin);
    module.api.C_Logout(session);
  } catch (error) {
    const locked = pkcs11Code(error) === pkcs11js.CKR_PIN_LOCKED;
    throw new Failure('WRONG_PIN', locked ? `the user PIN of "${label}" is locked` : label);
  } finally {
    module.api.C_CloseSession(session);
  }
}

function main(args: string[]): void {
  const [modulePath, command, ...rest] = args;
  let module: Pkcs11Module;
  try {
    module = Pkcs11Module.open(modulePath ?? '');
  } catch (error) {
    throw new Failure(isKeyCustodyError(error, 'MODULE_MISSING') ? 'MODULE_MISSING' : 'MODULE_LOAD_FAILED', describe(error));
  }
  if (command === 'check-pins' && rest.length === 1) return void checkPins(module.api, slotById(module.api, rest[0]!));
  if (command === 'make-token' && rest.length === 2) return makeToken(module.api, rest[0]!, rest[1]!);
  if (command === 'login' && rest.length === 1) return login(module, rest[0]!);
  throw new Failure('USAGE', 'expected: MODULE check-pins SLOT_ID | MODULE make-token SLOT_ID LABEL | MODULE login LABEL');
}

try {
  main(process.argv.slice(2));
} catch (error) {
  const failure = error instanceof Failure ? error : new Failure('UNEXPECTED', describe(error));
  const entry = loadScriptExitCodes(join(PROJECT_ROOT, 'scripts')).find((e) => e.name === failure.script);
  process.stderr.write(`wizard_setup_hsm: ${failure.script}: ${failure.detail}\n`);
  process.exitCode = entry?.code ?? 1;
}
