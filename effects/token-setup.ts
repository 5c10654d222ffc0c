import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HsmType } from '../machines/events';
import { childEnvironment } from './child-env';
import { describeScriptExit } from './script-exit-codes';
import { KeywardError, scriptErrorCode } from '../errors/keyward-error';

/** A failed token script; `script` is its name for the failure in scripts/exit-codes.tsv. */
export class TokenSetupError extends KeywardError {
  constructor(
    readonly script: string,
    message: string,
    /** The form field at fault ("pin", "soPin"), where the script named one. */
    readonly field?: string,
  ) {
    super(scriptErrorCode(script), message);
    this.name = 'TokenSetupError';
  }
}

export interface TokenSetupRequest {
  hsmType: HsmType;
  modulePath: string;
  label: string;
  slot: number | null;
  purpose: 'wizard' | 'auto_restore';
  pin: string;
  soPin: string | null;
}

export interface TokenSetupPaths {
  scriptsDir: string;
  secretsDir: string;
  /** Where the user PIN is kept for later logins (file:…); the SO PIN is never kept. */
  userPinFile: string;
  softhsmConf: string;
}

/**
 * A PIN outside the token's limits, said for the person who typed it: which PIN, the token's bound.
 * The script checks the lengths before it initializes anything (server/token-pin-tool.ts).
 */
export function pinLengthRefusal(name: string, detail: string, label: string): { message: string; field: 'pin' | 'soPin' } | null {
  const match = /^(at (?:most|least) \d+ characters) for the (user PIN|SO PIN)$/.exec(detail);
  if (!match || (name !== 'PIN_TOO_LONG' && name !== 'PIN_TOO_SHORT')) return null;
  const [, bound, which] = match;
  const compared = name === 'PIN_TOO_LONG' ? 'longer' : 'shorter';
  return { message: `The ${which} is ${compared} than this token allows (${bound}). Nothing was changed on the token "${label}".`, field: which === 'SO PIN' ? 'soPin' : 'pin' };
}

/**
 * Runs scripts/wizard_setup_hsm.sh. The PINs go to it in files (mode 0600 in the private secrets
 * directory), never as arguments; the SO PIN file is removed as soon as the script ends, the user PIN
 * file is kept only once the script has proven that the PIN logs in.
 */
export async function setUpToken(request: TokenSetupRequest, paths: TokenSetupPaths): Promise<void> {
  mkdirSync(paths.secretsDir, { recursive: true, mode: 0o700 });
  const nonce = randomBytes(8).toString('hex');
  const pinFile = join(paths.secretsDir, `.pin-${nonce}`);
  const soPinFile = join(paths.secretsDir, `.so-pin-${nonce}`);
  writeFileSync(pinFile, `${request.pin}\n`, { mode: 0o600, flag: 'wx' });
  if (request.soPin !== null) writeFileSync(soPinFile, `${request.soPin}\n`, { mode: 0o600, flag: 'wx' });
  try {
    const args = [join(paths.scriptsDir, 'wizard_setup_hsm.sh'), request.hsmType, request.modulePath, request.label, request.slot === null ? '-' : String(request.slot), request.purpose];
    const { code, signal, stderr } = await run('bash', args, childEnvironment({ SOFTHSM2_CONF: paths.softhsmConf, KW_PIN_FILE: pinFile, KW_SO_PIN_FILE: request.soPin === null ? '' : soPinFile }));
    if (code !== 0) {
      const entry = describeScriptExit(paths.scriptsDir, code, signal);
      // The script's last line says why; its "wizard_setup_hsm: NAME:" prefix repeats the code.
      const detail = (stderr.trim().split('\n').pop() ?? '').replace(/^wizard_setup_hsm: (?:[A-Z_]+(?::\s*|$))?/, '');
      const pin = pinLengthRefusal(entry.name, detail, request.label);
      if (pin) throw new TokenSetupError(entry.name, pin.message, pin.field);
      throw new TokenSetupError(entry.name, `setting up token "${request.label}" failed: ${entry.message}${detail ? ` (${detail})` : ''}`);
    }
    renameSync(pinFile, paths.userPinFile);
  } finally {
    rmSync(pinFile, { force: true });
    rmSync(soPinFile, { force: true });
  }
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 16_384) stderr += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}
