import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TokenConfig } from '../../hsm/pkcs11-token';
import { testDir } from './run-dir';
import { newSecret, registerSecretSource } from './secrets';

/** Set by test/support/node-environment.js inside Jest. */
const native = globalThis as { setNativeEnv?: (name: string, value: string) => void };

/** Sets a variable where native code (getenv) sees it, inside Jest or out. */
export function setNativeEnv(name: string, value: string): void {
  if (native.setNativeEnv) native.setNativeEnv(name, value);
  else process.env[name] = value;
}

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface SoftHsmToken {
  label: string;
  pinFile: string;
  pin: string;
  config: TokenConfig;
}

/**
 * A private SoftHSM2 installation in a temporary directory. It points this process's SOFTHSM2_CONF
 * at itself; the PKCS#11 module re-reads that at its next refresh. Tokens are made with pkcs11-tool,
 * an independent client, with PINs passed through the environment, never as arguments.
 */
/**
 * Destroys the KEK with pkcs11-tool, an independent client, as an operator or a faulty HSM would;
 * the token stays. The PIN reaches pkcs11-tool through the environment, never as an argument.
 */
export function destroyKek(softhsmConf: string, pin: string, tokenLabel = 'Trustpoint-SoftHSM', kekLabel = 'trustpoint-kek'): void {
  execFileSync('pkcs11-tool', ['--module', SOFTHSM_MODULE, '--token-label', tokenLabel, '--login', '--pin', 'env:KW_TEST_PIN', '--delete-object', '--type', 'secrkey', '--label', kekLabel], {
    env: { ...process.env, SOFTHSM2_CONF: softhsmConf, KW_TEST_PIN: pin },
    stdio: 'ignore',
  });
}

export class SoftHsm {
  readonly dir: string;
  readonly conf: string;
  readonly tokenDir: string;

  constructor(name: string) {
    this.dir = testDir(`softhsm-${name}`);
    this.conf = join(this.dir, 'softhsm2.conf');
    this.tokenDir = join(this.dir, 'tokens');
    mkdirSync(this.tokenDir, { recursive: true });
    writeFileSync(this.conf, `directories.tokendir = ${this.tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    setNativeEnv('SOFTHSM2_CONF', this.conf);
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, SOFTHSM2_CONF: this.conf };
  }

  initToken(label: string, kekLabel = 'trustpoint-kek'): SoftHsmToken {
    const soPin = newSecret('sopin');
    const pin = newSecret('pin');
    const slot = this.freeSlot();
    const env = { ...this.env, KW_TEST_SO_PIN: soPin, KW_TEST_PIN: pin };
    this.tool(['--slot', slot, '--init-token', '--label', label, '--so-pin', 'env:KW_TEST_SO_PIN'], env);
    this.tool(['--token-label', label, '--login', '--login-type', 'so', '--so-pin', 'env:KW_TEST_SO_PIN', '--init-pin', '--pin', 'env:KW_TEST_PIN'], env);
    const pinFile = join(this.dir, `${label}.pin`);
    writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
    registerSecretSource(pinFile);
    return { label, pin, pinFile, config: { modulePath: SOFTHSM_MODULE, tokenLabel: label, kekLabel, pin: { file: pinFile } } };
  }

  /** Runs pkcs11-tool against this installation; PINs only through env: references. */
  tool(args: string[], env: NodeJS.ProcessEnv = this.env): string {
    return execFileSync('pkcs11-tool', ['--module', SOFTHSM_MODULE, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Deletes every token, as a container restart with a volatile token directory would. */
  deleteAllTokens(): void {
    rmSync(this.tokenDir, { recursive: true, force: true });
    mkdirSync(this.tokenDir, { recursive: true });
  }

  private freeSlot(): string {
    const listing = this.tool(['--list-slots']);
    const match = /Slot \d+ \((0x[0-9a-f]+)\)[^\n]*\n\s+token state:\s+uninitialized/.exec(listing);
    if (!match) throw new Error(`no free SoftHSM slot in:\n${listing}`);
    return match[1]!;
  }
}
