import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { changeTokenPin, PinChangeCheckpoint, recoverPinChange, stagedPinFile } from '../../hsm/pin-change';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { Pkcs11Token } from '../../hsm/pkcs11-token';
import { PROJECT_ROOT } from '../../server/config';
import { testDir } from '../support/run-dir';
import { newSecret, registerSecretSource } from '../support/secrets';
import { SoftHsm, SoftHsmToken, SOFTHSM_MODULE } from '../support/softhsm';
import { expectCode } from '../support/expect-code';

/** Changing the token's user PIN kept in a file, crash-safe, on real SoftHSM2 tokens. */
jest.setTimeout(60_000);

const CHILD = join(PROJECT_ROOT, 'dist', 'test', 'support', 'pin-change-child.js');

/**
 * Makes a file or directory unwritable for this process: by its mode, or, for root (whom modes do not
 * stop), with the immutable attribute. Returns the undo.
 */
function makeReadOnly(path: string): () => void {
  if (process.getuid?.() !== 0) {
    const mode = statSync(path).mode & 0o777;
    chmodSync(path, mode & ~0o222);
    return () => chmodSync(path, mode);
  }
  execFileSync('chattr', ['+i', path]);
  return () => execFileSync('chattr', ['-i', path]);
}

/** A crash at a checkpoint, in this process: changeTokenPin stops there as a killed process would. */
class Crash extends Error {}
const crashAt = (at: PinChangeCheckpoint) => (point: PinChangeCheckpoint) => {
  if (point === at) throw new Crash(at);
};

describe('changing the token user PIN kept in a file', () => {
  let hsm: SoftHsm;

  beforeAll(() => {
    hsm = new SoftHsm('pin-change');
  });

  /** A fresh token with a KEK; its PIN file and the staged file beside it are declared secret sources. */
  function freshToken(label: string): { token: SoftHsmToken; pkcs11: Pkcs11Token; newPin: string } {
    const token = hsm.initToken(label);
    registerSecretSource(stagedPinFile(token.pinFile));
    Pkcs11Module.open(SOFTHSM_MODULE).refresh();
    const pkcs11 = new Pkcs11Token(token.config);
    pkcs11.generateKek();
    return { token, pkcs11, newPin: newSecret('newpin') };
  }

  /** Whether pkcs11-tool, an independent client, logs in with this PIN (given through its environment). */
  function toolLogsIn(token: SoftHsmToken, pin: string): boolean {
    try {
      hsm.tool(['--token-label', token.label, '--login', '--pin', 'env:KW_TEST_PIN', '--list-objects', '--type', 'secrkey'], { ...hsm.env, KW_TEST_PIN: pin });
      return true;
    } catch (error) {
      expect(String((error as { stderr?: string }).stderr)).toMatch(/CKR_PIN_INCORRECT/);
      return false;
    }
  }

  const pinFileHolds = (token: SoftHsmToken) => readFileSync(token.pinFile, 'utf8').replace(/\n$/, '');

  it('sets the new PIN on the token and in the file; the old one is refused; the same token object goes on working', async () => {
    const { token, pkcs11, newPin } = freshToken('KwPinChange');
    const kek = pkcs11.findKekId();
    const points: string[] = [];
    expect(await changeTokenPin({ token: pkcs11, pinSource: token.config.pin, newPin, checkpoint: (p) => void points.push(p) })).toBe('changed');
    expect(points).toEqual(['pin-staged', 'pin-set']);
    expect(pinFileHolds(token)).toBe(newPin);
    expect(statSync(token.pinFile).mode & 0o777).toBe(0o600);
    expect(existsSync(stagedPinFile(token.pinFile))).toBe(false);
    expect(toolLogsIn(token, newPin)).toBe(true);
    expect(toolLogsIn(token, token.pin)).toBe(false);
    // The kept session ended with the old PIN: the next one logs in with what the file holds now.
    expect(pkcs11.findKekId()).toEqual(kek);
    expect(new Pkcs11Token(token.config).findKekId()).toEqual(kek);
    // Run again (a lifecycle effect retried): nothing left to do.
    expect(await changeTokenPin({ token: pkcs11, pinSource: token.config.pin, newPin })).toBe('unchanged');
    expect(toolLogsIn(token, newPin)).toBe(true);
  });

  it('refuses a PIN outside the token limits, naming them, with the token and the file unchanged', async () => {
    const { token, pkcs11 } = freshToken('KwPinTooLong');
    const tooLong = newSecret('long').padEnd(256, 'x');
    const long = await expectCode(changeTokenPin({ token: pkcs11, pinSource: token.config.pin, newPin: tooLong }), 'PIN_TOO_LONG');
    expect(long.message).toMatch(/at most 255 characters/);
    const short = await expectCode(changeTokenPin({ token: pkcs11, pinSource: token.config.pin, newPin: 'abc' }), 'PIN_TOO_SHORT');
    expect(short.message).toMatch(/at least 4 characters/);
    await expectCode(() => pkcs11.changeUserPin(tooLong), 'PIN_TOO_LONG');
    for (const error of [long, short]) expect(error.message).not.toContain(token.pin);
    expect(long.message).not.toContain(tooLong);
    expect(pinFileHolds(token)).toBe(token.pin);
    expect(existsSync(stagedPinFile(token.pinFile))).toBe(false);
    expect(toolLogsIn(token, token.pin)).toBe(true);
  });

  it('refuses a PIN from the environment, telling the operator what to do instead, and changes nothing', async () => {
    const { token, newPin } = freshToken('KwPinEnv');
    process.env.KW_TEST_ENV_PIN = token.pin;
    try {
      const pinSource = { env: 'KW_TEST_ENV_PIN' };
      const error = await expectCode(changeTokenPin({ token: new Pkcs11Token({ ...token.config, pin: pinSource }), pinSource, newPin }), 'PIN_SOURCE_READ_ONLY');
      expect(error.message).toMatch(/KW_TEST_ENV_PIN.*pkcs11-tool --change-pin.*orchestrator's secret/);
      expect(error.message).not.toContain(token.pin);
      expect(await recoverPinChange({ token: new Pkcs11Token({ ...token.config, pin: pinSource }), pinSource })).toBe('none');
    } finally {
      delete process.env.KW_TEST_ENV_PIN;
    }
    expect(toolLogsIn(token, token.pin)).toBe(true);
    expect(toolLogsIn(token, newPin)).toBe(false);
  });

  it('refuses a PIN file, or a directory, keyward cannot write, and changes nothing', async () => {
    const { token, pkcs11, newPin } = freshToken('KwPinReadOnly');
    for (const path of [token.pinFile, hsm.dir]) {
      const restore = makeReadOnly(path);
      try {
        const error = await expectCode(changeTokenPin({ token: pkcs11, pinSource: token.config.pin, newPin }), 'PIN_SOURCE_READ_ONLY');
        expect(error.message).toContain(token.pinFile);
        expect(error.message).not.toContain(token.pin);
      } finally {
        restore();
      }
      expect(pinFileHolds(token)).toBe(token.pin);
      expect(existsSync(stagedPinFile(token.pinFile))).toBe(false);
      expect(toolLogsIn(token, token.pin)).toBe(true);
    }
  });

  it('drops the staged PIN when the token refuses the change (its PIN was changed outside keyward)', async () => {
    const { token, pkcs11, newPin } = freshToken('KwPinOutside');
    const outside = newSecret('outsidepin');
    hsm.tool(['--token-label', token.label, '--login', '--pin', 'env:KW_TEST_PIN', '--change-pin', '--new-pin', 'env:KW_TEST_NEW_PIN'], {
      ...hsm.env,
      KW_TEST_PIN: token.pin,
      KW_TEST_NEW_PIN: outside,
    });
    Pkcs11Module.open(SOFTHSM_MODULE).refresh();
    const error = await expectCode(changeTokenPin({ token: pkcs11, pinSource: token.config.pin, newPin }), 'WRONG_PIN');
    expect(error.message).not.toContain(token.pin);
    expect(existsSync(stagedPinFile(token.pinFile))).toBe(false);
    expect(pinFileHolds(token)).toBe(token.pin);
    expect(toolLogsIn(token, outside)).toBe(true);
  });

  it('recovers a change staged but never set: the staged PIN is discarded and the old one stays', async () => {
    const { token, pkcs11, newPin } = freshToken('KwPinStaged');
    await expect(changeTokenPin({ token: pkcs11, pinSource: token.config.pin, newPin, checkpoint: crashAt('pin-staged') })).rejects.toBeInstanceOf(Crash);
    expect(readFileSync(stagedPinFile(token.pinFile), 'utf8')).toBe(`${newPin}\n`);
    expect(statSync(stagedPinFile(token.pinFile)).mode & 0o777).toBe(0o600);

    Pkcs11Module.open(SOFTHSM_MODULE).refresh(); // a start-up
    expect(await recoverPinChange({ token: new Pkcs11Token(token.config), pinSource: token.config.pin })).toBe('discarded');
    expect(existsSync(stagedPinFile(token.pinFile))).toBe(false);
    expect(pinFileHolds(token)).toBe(token.pin);
    expect(toolLogsIn(token, token.pin)).toBe(true);
    expect(toolLogsIn(token, newPin)).toBe(false);
    // A staging cut short inside writeFileDurably leaves only its temporary copy, which holds the new PIN.
    const torn = `${stagedPinFile(token.pinFile)}.4242.tmp`;
    writeFileSync(torn, `${newPin}\n`, { mode: 0o600 });
    registerSecretSource(torn);
    expect(await recoverPinChange({ token: new Pkcs11Token(token.config), pinSource: token.config.pin })).toBe('none');
    expect(existsSync(torn)).toBe(false);
  });

  it('recovers a change set but not renamed: the staged PIN becomes the file', async () => {
    const { token, pkcs11, newPin } = freshToken('KwPinSet');
    await expect(changeTokenPin({ token: pkcs11, pinSource: token.config.pin, newPin, checkpoint: crashAt('pin-set') })).rejects.toBeInstanceOf(Crash);
    expect(pinFileHolds(token)).toBe(token.pin);
    expect(toolLogsIn(token, newPin)).toBe(true);

    Pkcs11Module.open(SOFTHSM_MODULE).refresh();
    expect(await recoverPinChange({ token: new Pkcs11Token(token.config), pinSource: token.config.pin })).toBe('completed');
    expect(pinFileHolds(token)).toBe(newPin);
    expect(existsSync(stagedPinFile(token.pinFile))).toBe(false);
    expect(new Pkcs11Token(token.config).findKekId()).not.toBeNull();
    expect(toolLogsIn(token, token.pin)).toBe(false);
  });

  it('finishes a change set but not renamed when the change is run again', async () => {
    const { token, pkcs11, newPin } = freshToken('KwPinRerun');
    await expect(changeTokenPin({ token: pkcs11, pinSource: token.config.pin, newPin, checkpoint: crashAt('pin-set') })).rejects.toBeInstanceOf(Crash);
    Pkcs11Module.open(SOFTHSM_MODULE).refresh();
    expect(await changeTokenPin({ token: new Pkcs11Token(token.config), pinSource: token.config.pin, newPin })).toBe('unchanged');
    expect(pinFileHolds(token)).toBe(newPin);
    expect(existsSync(stagedPinFile(token.pinFile))).toBe(false);
    expect(toolLogsIn(token, newPin)).toBe(true);
  });

  it('keeps both files and says so when neither PIN logs in', async () => {
    const { token } = freshToken('KwPinNeither');
    const wrong = newSecret('wrongpin');
    writeFileSync(stagedPinFile(token.pinFile), `${wrong}\n`, { mode: 0o600 });
    writeFileSync(token.pinFile, `${newSecret('wrongtoo')}\n`, { mode: 0o600 });
    const error = await expectCode(recoverPinChange({ token: new Pkcs11Token(token.config), pinSource: token.config.pin }), 'WRONG_PIN');
    expect(error.message).toMatch(/neither the PIN in .* nor the staged PIN/);
    expect(error.message).not.toContain(wrong);
    expect(readFileSync(stagedPinFile(token.pinFile), 'utf8')).toBe(`${wrong}\n`);
    expect(toolLogsIn(token, token.pin)).toBe(true);
  });

  it('recovers after a real process is killed (SIGKILL) between C_SetPIN and the rename', async () => {
    expect(existsSync(CHILD)).toBe(true); // built by tsc with the rest of dist/
    const { token, newPin } = freshToken('KwPinKilled');
    const dir = testDir('pin-change-child');
    const newPinFile = join(dir, 'new-pin');
    writeFileSync(newPinFile, `${newPin}\n`, { mode: 0o600 });
    registerSecretSource(newPinFile);
    const marker = join(dir, 'paused');

    const child = spawn(process.execPath, [CHILD, JSON.stringify(token.config), newPinFile, 'pin-set', marker], { env: hsm.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    for (let i = 0; !existsSync(marker); i++) {
      if (i > 300 || child.exitCode !== null) throw new Error(`the child never reached pin-set: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(pinFileHolds(token)).toBe(token.pin);
    expect(readFileSync(stagedPinFile(token.pinFile), 'utf8')).toBe(`${newPin}\n`);
    expect(toolLogsIn(token, newPin)).toBe(true); // the child's C_SetPIN happened

    Pkcs11Module.open(SOFTHSM_MODULE).refresh(); // this process starts up after the crash
    expect(await recoverPinChange({ token: new Pkcs11Token(token.config), pinSource: token.config.pin })).toBe('completed');
    expect(pinFileHolds(token)).toBe(newPin);
    expect(new Pkcs11Token(token.config).findKekId()).not.toBeNull();
    expect(toolLogsIn(token, newPin)).toBe(true);
    expect(toolLogsIn(token, token.pin)).toBe(false);
  });
});
