import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadScriptExitCodes } from '../../effects/script-exit-codes';
import { setUpToken, TokenSetupError, type TokenSetupRequest } from '../../effects/token-setup';
import { PROJECT_ROOT } from '../../server/config';
import { testDir } from '../support/run-dir';
import { newSecret, registerSecretSource } from '../support/secrets';
import { SoftHsm, SOFTHSM_MODULE } from '../support/softhsm';

/** scripts/wizard_setup_hsm.sh against real SoftHSM2 tokens: PINs, labels, and the token PIN step. */
jest.setTimeout(120_000);

const scriptsDir = join(PROJECT_ROOT, 'scripts');
const script = join(scriptsDir, 'wizard_setup_hsm.sh');

interface Slot {
  label: string | null;
  userPinSet: boolean;
}

/** The module's slots as pkcs11-tool, an independent client, lists them. */
function slots(hsm: SoftHsm): Slot[] {
  return hsm
    .tool(['--list-slots'])
    .split(/^Slot /m)
    .slice(1)
    .map((block) => ({ label: /^\s+token label\s+: (.*)$/m.exec(block)?.[1] ?? null, userPinSet: /^\s+token flags\s+:.*PIN initialized/m.test(block) }));
}
const labelled = (hsm: SoftHsm, label: string) => slots(hsm).filter((s) => s.label === label);

/** A token as an earlier, failed run left it: initialized with an SO PIN, its user PIN never set. */
function halfMadeToken(hsm: SoftHsm, label: string): void {
  hsm.tool(['--slot-index', '0', '--init-token', '--label', label, '--so-pin', 'env:KW_TEST_SO_PIN'], { ...hsm.env, KW_TEST_SO_PIN: newSecret('old-sopin') });
  expect(labelled(hsm, label)).toEqual([{ label, userPinSet: false }]);
}

function setup(name: string) {
  const hsm = new SoftHsm(name);
  const dir = testDir(name);
  const secretsDir = join(dir, 'secrets');
  mkdirSync(secretsDir, { recursive: true });
  const paths = { scriptsDir, secretsDir, userPinFile: join(secretsDir, 'hsm-user-pin'), softhsmConf: hsm.conf };
  registerSecretSource(paths.userPinFile);
  const request = (label: string, pins: Partial<Pick<TokenSetupRequest, 'pin' | 'soPin'>> = {}): TokenSetupRequest => ({
    hsmType: 'softhsm',
    modulePath: SOFTHSM_MODULE,
    label,
    slot: null,
    purpose: 'wizard',
    pin: newSecret('pin'),
    soPin: newSecret('sopin'),
    ...pins,
  });
  const failure = (promise: Promise<unknown>) =>
    promise.then(
      () => {
        throw new Error('the set-up succeeded');
      },
      (error: unknown) => {
        expect(error).toBeInstanceOf(TokenSetupError);
        return error as TokenSetupError;
      },
    );
  /** Whether the user PIN in the kept file logs in, as keyward's later logins read it. */
  const logsIn = (label: string, pin: string) => {
    expect(readFileSync(paths.userPinFile, 'utf8')).toBe(`${pin}\n`);
    hsm.tool(['--token-label', label, '--login', '--pin', 'env:KW_TEST_PIN', '--list-objects'], { ...hsm.env, KW_TEST_PIN: pin });
    return true;
  };
  return { hsm, dir, paths, request, failure, logsIn };
}

describe('token-pin-tool.js, the PIN-bearing half of the script', () => {
  it('exits only by codes of scripts/exit-codes.tsv, apart from its catch-all for the unforeseen', () => {
    const names = loadScriptExitCodes(scriptsDir).map((e) => e.name);
    const source = readFileSync(join(PROJECT_ROOT, 'server', 'token-pin-tool.ts'), 'utf8');
    const used = [...source.matchAll(/new Failure\('([A-Z_]+)'/g)].map((m) => m[1]!);
    expect(used.length).toBeGreaterThan(5);
    expect(used.filter((name) => !names.includes(name))).toEqual(['UNEXPECTED']);
    expect(names).toEqual(expect.arrayContaining(['PIN_TOO_LONG', 'PIN_TOO_SHORT']));
  });

  it('docs/cli.md shows the table as it is', () => {
    const docs = readFileSync(join(PROJECT_ROOT, 'docs', 'cli.md'), 'utf8');
    for (const { code, name, message } of loadScriptExitCodes(scriptsDir)) expect(docs).toContain(`| ${code} | ${name} | ${message} |\n`);
  });
});

describe('wizard_setup_hsm.sh: PINs never in a child process', () => {
  it('no child the script starts has a PIN in its environment or its arguments (read from /proc/PID/environ and cmdline)', () => {
    const { hsm, dir } = setup('h4-env');
    const label = 'EnvCheck';
    halfMadeToken(hsm, label); // so the run also deletes a token (softhsm2-util) and makes one
    // Each tool the script may start is wrapped: the wrapper records its own environ and cmdline,
    // which exec hands on unchanged to the real tool it becomes.
    const shims = join(dir, 'shims');
    mkdirSync(shims);
    const log = join(dir, 'children.log');
    const tools = ['pkcs11-tool', 'softhsm2-util', 'node', 'awk', 'cut', 'head', 'wc', 'cat', 'grep', 'sed', 'dirname', 'tail', 'find', 'sleep'];
    for (const tool of tools) {
      const real = spawnSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      if (!real) continue;
      writeFileSync(
        join(shims, tool),
        `#!/bin/sh\n{ echo "=== ${tool}"; /usr/bin/tr '\\0' '\\n' </proc/$$/environ; echo '--- argv'; /usr/bin/tr '\\0' ' ' </proc/$$/cmdline; echo; } >>"$KW_TEST_CHILD_LOG"\nexec ${real} "$@"\n`,
      );
      chmodSync(join(shims, tool), 0o755);
    }
    const pin = newSecret('pin');
    const soPin = newSecret('sopin');
    const pinFile = join(dir, 'user.pin');
    const soPinFile = join(dir, 'so.pin');
    writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
    writeFileSync(soPinFile, `${soPin}\n`, { mode: 0o600 });
    registerSecretSource(pinFile);
    registerSecretSource(soPinFile);
    const env = { ...hsm.env, PATH: `${shims}:${process.env.PATH}`, KW_TEST_CHILD_LOG: log, KW_PIN_FILE: pinFile, KW_SO_PIN_FILE: soPinFile };
    const runs = [1, 2].map((run) => {
      const result = spawnSync('bash', [script, 'softhsm', SOFTHSM_MODULE, label, '-', 'wizard'], { env, encoding: 'utf8' });
      return { run, status: result.status, stderr: result.stderr };
    });
    const children = readFileSync(log, 'utf8');
    expect(children.includes(pin)).toBe(false);
    expect(children.includes(soPin)).toBe(false);
    expect(runs).toEqual([1, 2].map((run) => ({ run, status: 0, stderr: expect.stringContaining('ready') })));
    // The record is real: the PIN-bearing steps ran, and as children of the script.
    for (const tool of ['pkcs11-tool', 'softhsm2-util', 'node', 'awk']) expect(children).toContain(`=== ${tool}\n`);
    expect(children).toContain(`KW_PIN_FILE=${pinFile}`);
    expect(labelled(hsm, label)).toEqual([{ label, userPinSet: true }]);
    hsm.tool(['--token-label', label, '--login', '--pin', 'env:KW_TEST_PIN', '--list-objects'], { ...hsm.env, KW_TEST_PIN: pin });
  });
});

/**
 * SoftHSM2 leaves out of a process's view a token whose file another process is rewriting as it
 * starts (a login there rewrites the token's flags): its token.object emptied stands for that moment.
 * The command runs while the token is hidden; it is given back once the command says it is looking
 * again. Resolves with the command's exit status and stderr.
 */
async function whileHidden(hsm: SoftHsm, label: string, command: string[], env: NodeJS.ProcessEnv, lookingAgain: RegExp): Promise<{ status: number | null; stderr: string; lookedAgain: boolean }> {
  const owner = readdirSync(hsm.tokenDir).find((d) => readFileSync(join(hsm.tokenDir, d, 'token.object')).includes(Buffer.from(label.padEnd(32, ' '))));
  if (!owner) throw new Error(`no token directory holds "${label}"`);
  const file = join(hsm.tokenDir, owner, 'token.object');
  const saved = `${file}.saved`;
  copyFileSync(file, saved);
  writeFileSync(file, '');
  expect(labelled(hsm, label)).toEqual([]);
  const child = spawn(command[0]!, command.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let lookedAgain = false;
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
    if (!lookedAgain && lookingAgain.test(stderr)) {
      lookedAgain = true;
      copyFileSync(saved, file);
    }
  });
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
  copyFileSync(saved, file);
  return { status, stderr, lookedAgain };
}

describe('a token left out of one scan (its file being rewritten by another process) is looked for again', () => {
  it('token-pin-tool.js login: the token, hidden at the first scan, is found and logged into', async () => {
    const hsm = new SoftHsm('h4-hidden-login');
    const token = hsm.initToken('HiddenLogin');
    const tool = join(PROJECT_ROOT, 'dist', 'server', 'token-pin-tool.js');
    const run = await whileHidden(hsm, token.label, ['node', tool, SOFTHSM_MODULE, 'login', token.label], { ...hsm.env, KW_PIN_FILE: token.pinFile }, /not seen .*looking again/);
    expect(run).toEqual({ status: 0, stderr: expect.stringContaining(`token "${token.label}" not seen`), lookedAgain: true });
  });

  it('wizard_setup_hsm.sh run again on a set-up token hidden from its first listing: no second token is made', async () => {
    const hsm = new SoftHsm('h4-hidden-rerun');
    const token = hsm.initToken('HiddenRerun');
    const dir = testDir('h4-hidden-rerun');
    const soPinFile = join(dir, 'so.pin');
    writeFileSync(soPinFile, `${newSecret('sopin')}\n`, { mode: 0o600 });
    registerSecretSource(soPinFile);
    const env = { ...hsm.env, KW_PIN_FILE: token.pinFile, KW_SO_PIN_FILE: soPinFile };
    const run = await whileHidden(hsm, token.label, ['bash', script, 'softhsm', SOFTHSM_MODULE, token.label, '-', 'wizard'], env, /left out of the listing; looking again/);
    expect(run).toEqual({ status: 0, stderr: expect.stringContaining('ready'), lookedAgain: true });
    expect(labelled(hsm, token.label)).toEqual([{ label: token.label, userPinSet: true }]);
    expect(slots(hsm).filter((s) => s.label !== null)).toHaveLength(1);
    hsm.tool(['--token-label', token.label, '--login', '--pin', 'env:KW_TEST_PIN', '--list-objects'], { ...hsm.env, KW_TEST_PIN: token.pin });
  });
});

describe('wizard_setup_hsm.sh: token labels', () => {
  it('a label with a backslash, set up twice, is one token', async () => {
    const { hsm, request, paths, logsIn } = setup('h4-label');
    const label = 'Team\\HSM \\n 1';
    const first = request(label);
    await setUpToken(first, paths);
    await setUpToken(first, paths); // a re-run, as after a crash: it must find the token it made
    expect(labelled(hsm, label)).toEqual([{ label, userPinSet: true }]);
    expect(slots(hsm).filter((s) => s.label !== null)).toHaveLength(1);
    expect(logsIn(label, first.pin)).toBe(true);
  });

  it('a label the token cannot carry unchanged is refused before anything is made', async () => {
    const { hsm, request, paths, failure } = setup('h4-label-refused');
    for (const label of [' Leading', 'Trailing ', 'Tab\there', 'X'.repeat(33), 'Ünïcode']) {
      const error = await failure(setUpToken(request(label), paths));
      // The script's USAGE, which the error table names apart from the CLI's.
      expect({ label, script: error.script, code: error.code }).toEqual({ label, script: 'USAGE', code: 'TOKEN_SCRIPT_USAGE' });
    }
    expect(slots(hsm)).toEqual([{ label: null, userPinSet: false }]);
  });
});

describe('wizard_setup_hsm.sh: the token PIN step', () => {
  it("a too-long PIN is refused with the token's own limits before anything is initialized; a retry with new PINs works", async () => {
    const { hsm, request, paths, failure, logsIn } = setup('h4-pin-long');
    const label = 'LongPin';
    const long = 'p'.repeat(300);
    const tooLongUser = await failure(setUpToken(request(label, { pin: long }), paths));
    expect(tooLongUser.code).toBe('PIN_TOO_LONG');
    expect(tooLongUser.message).toBe(`The user PIN is longer than this token allows (at most 255 characters). Nothing was changed on the token "${label}".`);
    const tooLongSo = await failure(setUpToken(request(label, { soPin: long }), paths));
    expect(tooLongSo.message).toContain('The SO PIN is longer than this token allows (at most 255 characters).');
    const tooShort = await failure(setUpToken(request(label, { pin: 'abc' }), paths));
    expect(tooShort.message).toContain('The user PIN is shorter than this token allows (at least 4 characters).');
    expect(slots(hsm)).toEqual([{ label: null, userPinSet: false }]); // nothing initialized, not even half
    expect(existsSync(paths.userPinFile)).toBe(false);

    const retry = request(label);
    await setUpToken(retry, paths);
    expect(labelled(hsm, label)).toEqual([{ label, userPinSet: true }]);
    expect(logsIn(label, retry.pin)).toBe(true);
  });

  it('a failure after the token was initialized leaves no token behind, so a retry with new PINs works', async () => {
    const { hsm, dir, request, paths, logsIn } = setup('h4-pin-after-init');
    // A full disk after C_InitToken: a file-size limit just above what C_InitToken writes. SoftHSM
    // does not notice that C_InitPIN's write was cut short; the script's login check does.
    const probe = new SoftHsm('h4-pin-probe');
    probe.tool(['--slot-index', '0', '--init-token', '--label', 'Probe', '--so-pin', 'env:KW_TEST_SO_PIN'], { ...probe.env, KW_TEST_SO_PIN: newSecret('sopin') });
    const [tokenDir] = readdirSync(probe.tokenDir);
    const limit = statSync(join(probe.tokenDir, tokenDir!, 'token.object')).size + 6;
    const label = 'AfterInit';
    const pinFile = join(dir, 'user.pin');
    const soPinFile = join(dir, 'so.pin');
    writeFileSync(pinFile, `${newSecret('pin')}\n`, { mode: 0o600 });
    writeFileSync(soPinFile, `${newSecret('sopin')}\n`, { mode: 0o600 });
    registerSecretSource(pinFile);
    registerSecretSource(soPinFile);
    const run = spawnSync('prlimit', [`--fsize=${limit}`, 'bash', script, 'softhsm', SOFTHSM_MODULE, label, '-', 'wizard'], {
      env: { ...hsm.env, KW_PIN_FILE: pinFile, KW_SO_PIN_FILE: soPinFile },
      encoding: 'utf8',
    });
    expect(run.status).not.toBe(0);
    expect(labelled(hsm, label)).toEqual([]);

    const retry = request(label);
    await setUpToken(retry, paths);
    expect(labelled(hsm, label)).toEqual([{ label, userPinSet: true }]);
    expect(logsIn(label, retry.pin)).toBe(true);
  });

  it('a half-made token an earlier run left is remade: a retry with new PINs, and a new SO PIN, works', async () => {
    const { hsm, request, paths, failure, logsIn } = setup('h4-pin-half');
    const label = 'HalfMade';
    halfMadeToken(hsm, label);
    // PINs the token would refuse change nothing, not even the half-made token.
    expect((await failure(setUpToken(request(label, { soPin: 's'.repeat(256) }), paths))).code).toBe('PIN_TOO_LONG');
    expect(labelled(hsm, label)).toEqual([{ label, userPinSet: false }]);
    const retry = request(label);
    await setUpToken(retry, paths);
    expect(labelled(hsm, label)).toEqual([{ label, userPinSet: true }]);
    expect(slots(hsm).filter((s) => s.label !== null)).toHaveLength(1);
    expect(logsIn(label, retry.pin)).toBe(true);
  });

  it('a physical token is never initialized or deleted, and a too-long PIN is refused with its limits', async () => {
    const { hsm, request, paths, failure } = setup('h4-pin-physical');
    const label = 'Physical';
    halfMadeToken(hsm, label);
    const physical = { ...request(label), hsmType: 'physical' as const, soPin: null };
    expect((await failure(setUpToken(physical, paths))).code).toBe('WRONG_PIN');
    expect(labelled(hsm, label)).toEqual([{ label, userPinSet: false }]);
    const ready = hsm.initToken('PhysicalReady');
    const long = await failure(setUpToken({ ...physical, label: ready.label, pin: 'q'.repeat(256) }, paths));
    expect(long.message).toBe('The user PIN is longer than this token allows (at most 255 characters). Nothing was changed on the token "PhysicalReady".');
  });
});
