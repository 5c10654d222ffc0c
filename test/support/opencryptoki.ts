import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import type { TokenConfig } from '../../hsm/pkcs11-token';
import { testDir } from './run-dir';
import { registerSecret, registerSecretSource } from './secrets';

/**
 * openCryptoki's software token as a second, independent PKCS#11 implementation. openCryptoki 3.8
 * has no private mode: its slot daemon, socket (/var/run/pkcsslotd.socket), configuration and token
 * store (/var/lib/opencryptoki/swtok) are fixed system paths, and it has exactly one software token.
 * So the tests use the host's instance, one test process at a time: they start pkcsslotd if it is not
 * running (and only such a daemon do they stop, for the outage test, and start again), and they use the software token only when it is uninitialized
 * or carries the test label below, which they re-initialize (wiping it) at each use.
 */
export const OCK_MODULE = '/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so';
export const OCK_TOKEN_LABEL = 'keyward-test-ock';
const SLOTD = '/usr/sbin/pkcsslotd';
const PID_FILE = '/var/run/pkcsslotd.pid';
const SOCKET = '/var/run/pkcsslotd.socket';
const SWTOK = '/var/lib/opencryptoki/swtok';
const DEFAULT_SO_PIN = '87654321'; // openCryptoki's documented factory SO PIN of a new software token
/** Test files that use the one software token take turns (jest runs files in parallel workers). */
const LOCK = join(tmpdir(), 'keyward-test-opencryptoki.lock');
/** The pid of a pkcsslotd the tests started, so that a later run still knows it is theirs to stop. */
const STARTED_BY_TESTS = join(tmpdir(), 'keyward-test-pkcsslotd.pid');

export interface OckToken {
  label: string;
  pin: string;
  pinFile: string;
  config: TokenConfig;
}

export type OckAvailability = { available: true; daemonStartedByTests: boolean } | { available: false; reason: string };

function startedByTests(): boolean {
  const pid = daemonPid();
  return pid !== null && existsSync(STARTED_BY_TESTS) && readFileSync(STARTED_BY_TESTS, 'utf8').trim() === String(pid);
}

/** A process that exists and is not a zombie (a stopped daemon may wait for a reaper that never comes). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Waits (up to five minutes) until no other test process uses openCryptoki, then holds it until release or exit. */
function acquire(): void {
  for (let i = 0; i < 1500; i++) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      process.once('exit', releaseOpenCryptoki);
      return;
    } catch {
      const holder = Number(existsSync(join(LOCK, 'pid')) ? readFileSync(join(LOCK, 'pid'), 'utf8') : '0');
      if (holder > 0 && !alive(holder)) rmSync(LOCK, { recursive: true, force: true });
      else execFileSync('sleep', ['0.2']);
    }
  }
  throw new Error(`openCryptoki stayed in use by another test process (${LOCK})`);
}

export function releaseOpenCryptoki(): void {
  if (!existsSync(join(LOCK, 'pid')) || readFileSync(join(LOCK, 'pid'), 'utf8') !== String(process.pid)) return;
  // This process's use of the library ends with its turn: a session keyward kept open would refuse the
  // next test file's C_InitToken (CKR_SESSION_EXISTS), and a library left attached to a slot daemon
  // that another file stops may bring this (jest worker) process down with it.
  const module = Pkcs11Module.open(OCK_MODULE);
  module.sessions.clear();
  try {
    module.api.C_Finalize();
  } catch {
    // not initialized
  }
  rmSync(LOCK, { recursive: true, force: true });
}

function daemonPid(): number | null {
  if (!existsSync(PID_FILE)) return null;
  const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  return alive(pid) && existsSync(SOCKET) ? pid : null;
}

/** Runs a short Cryptoki script against openCryptoki in a child process (a fresh library state); PINs in its env. */
function ockScript(body: string, env: Record<string, string> = {}): string {
  const script = `const p = require(${JSON.stringify(require.resolve('pkcs11js'))});
const api = new p.PKCS11(); api.load(${JSON.stringify(OCK_MODULE)}); api.C_Initialize();
const slot = api.C_GetSlotList(true).find((s) => api.C_GetTokenInfo(s).model.trim() === 'IBM SoftTok');
if (slot === undefined) { console.log(JSON.stringify({ error: 'no software token slot' })); process.exit(0); }
${body}
api.C_Finalize();`;
  return execFileSync(process.execPath, ['-e', script], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Whether openCryptoki can run here; starts its slot daemon when it is installed but not running.
 * When it can, this test process holds openCryptoki until releaseOpenCryptoki (call it in afterAll).
 */
export function useOpenCryptoki(): OckAvailability {
  if (!existsSync(OCK_MODULE) || !existsSync(SLOTD)) return { available: false, reason: 'openCryptoki is not installed (scripts/setup.sh test installs the Debian package opencryptoki)' };
  acquire();
  const availability = availabilityHeld();
  if (!availability.available) releaseOpenCryptoki();
  return availability;
}

function availabilityHeld(): OckAvailability {
  if (daemonPid() === null) {
    if (process.getuid?.() !== 0) return { available: false, reason: 'pkcsslotd is not running and only root can start it' };
    const started = startDaemon();
    if (!started.ok) return { available: false, reason: started.reason };
    writeFileSync(STARTED_BY_TESTS, String(daemonPid()));
  }
  let token: { label?: string; flags?: number; error?: string };
  try {
    token = JSON.parse(ockScript(`const t = api.C_GetTokenInfo(slot); console.log(JSON.stringify({ label: t.label.replace(/[\\s\\0]+$/, ''), flags: t.flags }));`)) as typeof token;
  } catch (error) {
    return {
      available: false,
      reason: `openCryptoki's library does not answer: ${String((error as { stderr?: string }).stderr ?? error)
        .trim()
        .split('\n')
        .pop()}`,
    };
  }
  if (token.error) return { available: false, reason: `openCryptoki has ${token.error}` };
  const initialized = ((token.flags ?? 0) & 0x400) !== 0; // CKF_TOKEN_INITIALIZED
  if (initialized && token.label !== OCK_TOKEN_LABEL) {
    return { available: false, reason: `openCryptoki's software token is in use here (label "${token.label}"); the tests use it only when it is uninitialized or labelled "${OCK_TOKEN_LABEL}"` };
  }
  return { available: true, daemonStartedByTests: startedByTests() };
}

function startDaemon(): { ok: true } | { ok: false; reason: string } {
  try {
    execFileSync(SLOTD, [], { stdio: 'ignore' });
  } catch (error) {
    return { ok: false, reason: `pkcsslotd failed to start: ${String(error)}` };
  }
  for (let i = 0; i < 50 && daemonPid() === null; i++) execFileSync('sleep', ['0.1']);
  return daemonPid() === null ? { ok: false, reason: 'pkcsslotd did not come up' } : { ok: true };
}

/** Stops the slot daemon the tests started (never one they found running): a module outage. */
export function stopDaemon(): void {
  if (!startedByTests()) throw new Error('pkcsslotd was not started by the tests; it is not theirs to stop');
  const pid = daemonPid();
  if (pid === null) return;
  // pkcsslotd ignores SIGTERM while a process is attached to it; the outage is then a crash.
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    process.kill(pid, signal);
    for (let i = 0; i < 30; i++) {
      if (!alive(pid)) return;
      execFileSync('sleep', ['0.1']);
    }
  }
  throw new Error('pkcsslotd did not stop');
}

export function restartDaemon(): void {
  const started = startDaemon();
  if (!started.ok) throw new Error(started.reason);
  writeFileSync(STARTED_BY_TESTS, String(daemonPid()));
}

/**
 * Wipes the software token (only ever the test token, see openCryptokiAvailability) and initializes it
 * as an HSM vendor's tools would: a label, a new SO PIN, a user PIN. openCryptoki's PINs are 4–8
 * characters. Its C_InitToken cannot re-initialize a token whose SO PIN was changed, so the store is
 * emptied first and the token starts from its factory state.
 */
export function initOckToken(kekLabel = 'trustpoint-kek'): OckToken {
  for (const name of ['NVTOK.DAT', 'MK_SO', 'MK_USER']) rmSync(join(SWTOK, name), { force: true });
  for (const name of readdirSync(join(SWTOK, 'TOK_OBJ'))) rmSync(join(SWTOK, 'TOK_OBJ', name), { force: true });
  const pin = randomBytes(6).toString('base64url');
  const soPin = randomBytes(6).toString('base64url');
  registerSecret(pin);
  registerSecret(soPin);
  ockScript(
    `api.C_InitToken(slot, ${JSON.stringify(DEFAULT_SO_PIN)}, ${JSON.stringify(OCK_TOKEN_LABEL.padEnd(32, ' '))});
const s = api.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
api.C_Login(s, p.CKU_SO, ${JSON.stringify(DEFAULT_SO_PIN)});
api.C_SetPIN(s, ${JSON.stringify(DEFAULT_SO_PIN)}, process.env.KW_TEST_SO_PIN);
api.C_InitPIN(s, process.env.KW_TEST_PIN);
api.C_Logout(s);
api.C_CloseSession(s);`,
    { KW_TEST_SO_PIN: soPin, KW_TEST_PIN: pin },
  );
  const pinFile = join(testDir('ock'), `${OCK_TOKEN_LABEL}.pin`);
  writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
  registerSecretSource(pinFile);
  return { label: OCK_TOKEN_LABEL, pin, pinFile, config: { modulePath: OCK_MODULE, tokenLabel: OCK_TOKEN_LABEL, kekLabel, pin: { file: pinFile } } };
}

/** pkcs11-tool against openCryptoki (an independent client); the PIN only through an env: reference. */
export function ockTool(args: string[], pin?: string): string {
  return execFileSync('pkcs11-tool', ['--module', OCK_MODULE, ...args], { env: { ...process.env, ...(pin ? { KW_TEST_PIN: pin } : {}) }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Says, in the test output, why the openCryptoki half of a test did not run. */
export function reportOckUnavailable(reason: string): void {
  process.stderr.write(`\n*** openCryptoki tests NOT run: ${reason}. The physical-HSM tests ran on SoftHSM2 only. ***\n\n`);
}

/** Whether the running pkcsslotd is one the tests started (and so may stop). */
export function daemonStartedByTests(): boolean {
  return startedByTests();
}
