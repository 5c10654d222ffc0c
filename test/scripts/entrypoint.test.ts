import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { accessSync, appendFileSync, constants, existsSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { get } from 'node:https';
import { dirname, join, posix, relative } from 'node:path';
import knex from 'knex';
import { loadConfig, PROJECT_ROOT } from '../../server/config';
import { EXIT } from '../../server/exit-codes';
import { testDir } from '../support/run-dir';
import type { AppVersionRow, LifecycleRow } from '../../db/rows';

/**
 * The container's entrypoint, run outside a container (no Docker engine here): it prepares a home,
 * boots, serves HTTPS, stops on SIGTERM, refuses root and a newer database. And the Dockerfile,
 * checked by reading it: every path it names exists, the user is not root, the port and volumes
 * agree with keyward's configuration.
 */
jest.setTimeout(120_000);

const ENTRYPOINT = join(PROJECT_ROOT, 'scripts', 'entrypoint.sh');
const CLI = join(PROJECT_ROOT, 'dist', 'server', 'cli.js');

/** The caller's environment without any keyward setting, so only what a test sets applies. */
function cleanEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('KEYWARD_') || name === 'SOFTHSM2_CONF' || name === 'DATABASE_URL') continue;
    env[name] = value;
  }
  return { ...env, KEYWARD_HOST: '127.0.0.1', KEYWARD_PORT: '0', KEYWARD_TLS_SANS: 'localhost,127.0.0.1', ...extra };
}

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the entrypoint; everything it prints is appended to `log` (the suite's secret scan reads it). */
function startEntrypoint(log: string, env: NodeJS.ProcessEnv, args: string[] = []): Run {
  appendFileSync(log, `$ scripts/entrypoint.sh ${args.join(' ')}\n`);
  const child = spawn(ENTRYPOINT, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    appendFileSync(log, chunk);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      appendFileSync(log, `[exit ${code ?? signal}]\n`);
      resolve({ code, signal });
    }),
  );
  return { child, output: () => output, exited };
}

/** The URL from serve.ts's "keyward: serving https://HOST:PORT/ …" line. */
async function servingUrl(run: Run, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = /keyward: serving (https:\/\/\S+\/)/.exec(run.output());
    if (match) return match[1]!;
    if (run.child.exitCode !== null || run.child.signalCode !== null) throw new Error(`the entrypoint exited before serving:\n${run.output()}`);
    if (Date.now() > deadline) throw new Error(`the entrypoint did not serve within ${timeoutMs} ms:\n${run.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits for the process to end, or kills it and fails: a test never leaves a server behind. */
async function exitWithin(run: Run, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  const result = await Promise.race([run.exited, timeout]);
  clearTimeout(timer);
  if (result === 'timeout') {
    run.child.kill('SIGKILL');
    await run.exited;
    throw new Error(`the process did not exit within ${ms} ms:\n${run.output()}`);
  }
  return result;
}

/** GET over HTTPS, accepting the self-signed certificate a fresh install serves. */
function httpsGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { rejectUnauthorized: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .on('timeout', function (this: { destroy(error: Error): void }) {
        this.destroy(new Error(`GET ${url} timed out`));
      });
  });
}

const mode = (path: string) => statSync(path).mode & 0o777;
const isRoot = process.getuid?.() === 0;

describe('scripts/entrypoint.sh outside a container', () => {
  let base: string;
  let home: string;
  let log: string;
  let env: NodeJS.ProcessEnv;
  let server: Run;
  let url: string;

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npm test does; or npx tsc -p .)`);
    base = testDir('entrypoint');
    home = join(base, 'home');
    log = join(base, 'entrypoint.log');
    env = cleanEnv({ KEYWARD_HOME: home, KEYWARD_ALLOW_ROOT: '1' });
    server = startEntrypoint(log, env);
    url = await servingUrl(server);
  });

  afterAll(async () => {
    if (server && server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
  });

  it('creates the home layout: tokens/ and secrets/ private, tls/, and a SoftHSM2 configuration for its tokens', () => {
    expect(mode(home)).toBe(0o700);
    expect(mode(join(home, 'tokens'))).toBe(0o700);
    expect(mode(join(home, 'secrets'))).toBe(0o700);
    expect(mode(join(home, 'tls'))).toBe(0o700);
    const conf = readFileSync(join(home, 'softhsm2.conf'), 'utf8');
    expect(conf).toMatch(new RegExp(`^directories\\.tokendir = ${join(home, 'tokens').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    expect(conf).toMatch(/^objectstore\.backend = file$/m);
    // Files keyward writes are the user's alone (umask 077).
    expect(mode(join(home, 'keyward.sqlite')) & 0o077).toBe(0);
  });

  it('boots a fresh database into the wizard (DB_NOT_INITIALIZED)', () => {
    expect(existsSync(join(home, 'keyward.sqlite'))).toBe(true);
    const inspect = spawnSync(process.execPath, [CLI, 'inspect', '--json'], { env, encoding: 'utf8', timeout: 60_000 });
    appendFileSync(log, `$ keyward inspect --json\n${inspect.stdout}${inspect.stderr}[exit ${inspect.status}]\n`);
    expect(inspect.status).toBe(0);
    expect(JSON.parse(inspect.stdout)).toMatchObject({ state: 'wizard.cryptoStorage.waiting', wizardState: 'WIZARD_SETUP_CRYPTO_STORAGE', scenario: 'DB_NOT_INITIALIZED' });
  });

  it('serves HTTPS: /livez answers 200', async () => {
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
    const livez = await httpsGet(`${url}livez`);
    expect(livez.status).toBe(200);
  });

  it('stops on SIGTERM with exit 0: the entrypoint exec-ed node, which got the signal itself', async () => {
    // exec: the process the entrypoint started as is node now, not a shell waiting for it.
    if (existsSync(`/proc/${server.child.pid}/comm`)) expect(readFileSync(`/proc/${server.child.pid}/comm`, 'utf8').trim()).toBe('node');
    server.child.kill('SIGTERM');
    expect(await exitWithin(server, 30_000)).toEqual({ code: 0, signal: null });
    expect(server.output()).toMatch(/SIGTERM: shutting down/);
  });

  it('refuses a database newer than this keyward (VERSION_DOWNGRADE): exit 6, nothing served, nothing changed', async () => {
    const database = join(home, 'keyward.sqlite');
    const db = knex({ client: 'sqlite3', connection: { filename: database }, useNullAsDefault: true });
    let revision: number;
    try {
      await db('app_version').update({ version: '99.0.0' });
      revision = Number((await db<LifecycleRow>('lifecycle').first('revision'))?.revision);
    } finally {
      await db.destroy();
    }
    const run = startEntrypoint(log, env);
    expect(await exitWithin(run, 60_000)).toEqual({ code: EXIT.STARTUP_REFUSED, signal: null });
    expect(run.output()).toMatch(/start-up refused: the database was last used by keyward 99\.0\.0/);
    expect(run.output()).not.toMatch(/keyward: serving/);
    const after = knex({ client: 'sqlite3', connection: { filename: database }, useNullAsDefault: true });
    try {
      expect((await after<AppVersionRow>('app_version').first('version'))?.version).toBe('99.0.0');
      expect(Number((await after<LifecycleRow>('lifecycle').first('revision'))?.revision)).toBe(revision);
    } finally {
      await after.destroy();
    }
  });

  (isRoot ? it : it.skip)('refuses to run as root without KEYWARD_ALLOW_ROOT=1, before touching anything', () => {
    const untouched = join(base, 'root-home');
    const run = spawnSync(ENTRYPOINT, [], { env: cleanEnv({ KEYWARD_HOME: untouched }), encoding: 'utf8', timeout: 30_000 });
    appendFileSync(log, `$ scripts/entrypoint.sh (as root, no override)\n${run.stdout}${run.stderr}[exit ${run.status}]\n`);
    expect(run.status).toBe(EXIT.STARTUP_FAILED);
    expect(run.stderr).toMatch(/refusing to run as root: run as an unprivileged user .*KEYWARD_ALLOW_ROOT=1/);
    expect(existsSync(untouched)).toBe(false);
  });

  it('keeps an existing SoftHSM2 configuration, and runs a keyward command given as arguments', () => {
    const other = join(base, 'other-home');
    const conf = join(base, 'operator-softhsm2.conf');
    const text = `directories.tokendir = ${join(base, 'operator-tokens')}\nobjectstore.backend = file\n`;
    mkdirSync(join(base, 'operator-tokens'));
    writeFileSync(conf, text);
    const run = spawnSync(ENTRYPOINT, ['exit-codes'], { env: cleanEnv({ KEYWARD_HOME: other, KEYWARD_ALLOW_ROOT: '1', SOFTHSM2_CONF: conf }), encoding: 'utf8', timeout: 30_000 });
    appendFileSync(log, `$ scripts/entrypoint.sh exit-codes\n${run.stdout}${run.stderr}[exit ${run.status}]\n`);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^6\tstart-up refused/m);
    expect(readFileSync(conf, 'utf8')).toBe(text);
    expect(existsSync(join(other, 'softhsm2.conf'))).toBe(false);
    expect(mode(join(other, 'secrets'))).toBe(0o700);
  });
});

// ---------------------------------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions, continuation lines joined, comments dropped; stage counts FROM lines. */
function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // a comment inside a continued instruction
    pending += `${line.replace(/\\$/, '')} `;
    if (line.endsWith('\\')) continue;
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/s.exec(pending.trim()) ?? [];
    pending = '';
    if (keyword.toUpperCase() === 'FROM') stage++;
    instructions.push({ keyword: keyword.toUpperCase(), args: args.trim(), stage });
  }
  return instructions;
}

/** KEY=value pairs of an ENV, ARG or LABEL instruction (values without quotes). */
function pairs(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const match of args.matchAll(/([A-Za-z_][A-Za-z0-9_.]*)(?:=("[^"]*"|\S*))?/g)) out[match[1]!] = (match[2] ?? '').replace(/^"|"$/g, '');
  return out;
}

/** .dockerignore's patterns, as the paths they exclude from the build context (top level and globs). */
function ignoredBy(patterns: string[], path: string): boolean {
  const top = path.split('/')[0]!;
  return patterns.some((pattern) => {
    const regex = new RegExp(
      `^${pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]')}$`,
    );
    return regex.test(path) || regex.test(top);
  });
}

describe('Dockerfile (checked without Docker)', () => {
  const dockerfile = parseDockerfile(readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8'));
  const ignore = readFileSync(join(PROJECT_ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const runtimeStage = Math.max(...dockerfile.map((i) => i.stage));
  const runtime = dockerfile.filter((i) => i.stage === runtimeStage);
  const all = (keyword: string, list = runtime) => list.filter((i) => i.keyword === keyword);
  const env = Object.assign({}, ...all('ENV').map((i) => pairs(i.args))) as Record<string, string>;
  const args = Object.assign({}, ...all('ARG', dockerfile).map((i) => pairs(i.args))) as Record<string, string>;
  const workdir = all('WORKDIR').at(-1)!.args;

  it('is two stages on an official Debian-based Node 20 image', () => {
    expect(runtimeStage).toBe(1);
    for (const from of all('FROM', dockerfile)) {
      const image = from.args.split(/\s+/)[0]!.replace(/^\$\{(\w+)\}$/, (_, name: string) => args[name] ?? '');
      expect(image).toMatch(/^node:20[.\d]*-(bookworm|bullseye|trixie)(-slim)?(@sha256:[0-9a-f]{64})?$/);
    }
  });

  it('builds native modules from source and installs softhsm2 and opensc in the runtime image', () => {
    const build = dockerfile.filter((i) => i.stage === 0);
    const buildEnv = Object.assign({}, ...all('ENV', build).map((i) => pairs(i.args))) as Record<string, string>;
    expect(buildEnv.npm_config_build_from_source).toBe('true');
    expect(buildEnv.npm_config_nodedir).toBe('/usr/local');
    expect(
      all('RUN', build)
        .map((i) => i.args)
        .join('\n'),
    ).toMatch(/npm ci[\s\S]*tsc -p[\s\S]*npm prune --omit=dev/);
    const installs = all('RUN')
      .map((i) => i.args)
      .join('\n');
    expect(installs).toMatch(/apt-get install -y --no-install-recommends [^&]*\bsofthsm2\b[^&]*\bopensc\b/);
    expect(installs).toMatch(/rm -rf \/var\/lib\/apt\/lists/);
  });

  it('names an entrypoint that exists in the repository, is executable and is copied into the image', () => {
    const entrypoint = JSON.parse(all('ENTRYPOINT').at(-1)!.args) as string[];
    const script = entrypoint.find((part) => part.endsWith('scripts/entrypoint.sh'))!;
    expect(script).toBeDefined();
    const inRepo = posix.isAbsolute(script) ? posix.relative(workdir, script) : script;
    expect(inRepo).toBe('scripts/entrypoint.sh');
    expect(() => accessSync(join(PROJECT_ROOT, inRepo), constants.X_OK)).not.toThrow();
    expect(all('COPY').some((i) => /^scripts\s/.test(i.args))).toBe(true);
    // Before the script: nothing, or tini (installed), which forwards signals and the exit code.
    const init = entrypoint.slice(0, entrypoint.indexOf(script));
    if (init.length > 0) {
      expect(init).toEqual(['/usr/bin/tini', '--']);
      expect(
        all('RUN')
          .map((i) => i.args)
          .join('\n'),
      ).toMatch(/apt-get install [^&]*\btini\b/);
    }
  });

  it('copies only sources that exist and that .dockerignore lets into the build context', () => {
    const copies = dockerfile.filter((i) => i.keyword === 'COPY' && !/--from=/.test(i.args));
    expect(copies.length).toBeGreaterThan(3);
    for (const copy of copies) {
      const parts = copy.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const source of parts.slice(0, -1)) {
        expect({ source, exists: existsSync(join(PROJECT_ROOT, source)), ignored: ignoredBy(ignore, source) }).toEqual({ source, exists: true, ignored: false });
      }
    }
    // What must never enter an image: a developer's home (database, tokens, PIN file) and build output.
    for (const path of ['var', 'node_modules', 'dist', '.git']) expect(ignoredBy(ignore, path)).toBe(true);
  });

  it('runs as a fixed non-root user', () => {
    const user = all('USER').at(-1)!.args.split(':')[0]!;
    expect(user).not.toMatch(/^(root|0)$/);
    const uid = /useradd[^&]*--uid\s+"?\$\{?(\w+)\}?"?[^&]*\s(\w+)\s*$/m.exec(
      all('RUN')
        .map((i) => i.args)
        .find((a) => a.includes('useradd'))!
        .split('&&')
        .find((c) => c.includes('useradd'))!
        .trim(),
    );
    expect(uid).not.toBeNull();
    expect(uid![2]).toBe(user);
    expect(Number(args[uid![1]!])).toBeGreaterThanOrEqual(1000);
  });

  it('exposes the port keyward listens on by default and sets it', () => {
    const defaultPort = loadConfig({}).port;
    expect(all('EXPOSE').map((i) => Number(i.args.split('/')[0]))).toEqual([defaultPort]);
    expect(Number(env.KEYWARD_PORT)).toBe(defaultPort);
    expect(env.KEYWARD_HOST).toBe('0.0.0.0');
    expect(all('HEALTHCHECK').at(-1)!.args).toMatch(/\/livez/);
  });

  it('puts the home and the token directory on volumes that match the configured paths', () => {
    const volumes = JSON.parse(all('VOLUME').at(-1)!.args) as string[];
    const home = env.KEYWARD_HOME!;
    expect(volumes).toContain(home);
    expect(volumes).toContain(posix.join(home, 'tokens'));
    expect(dirname(env.SOFTHSM2_CONF!)).toBe(home);
    for (const volume of volumes) expect(relative(home, volume).startsWith('..')).toBe(false);
    // Created and owned by the user in the image, so a new named volume starts with its ownership.
    const setup = all('RUN')
      .map((i) => i.args)
      .find((a) => a.includes('useradd'))!;
    expect(setup).toContain(`mkdir -p ${posix.join(home, 'tokens')}`);
    expect(setup).toMatch(new RegExp(`chown -R keyward:keyward ${home.replace(/\//g, '\\/')}`));
  });

  it('bakes in no secret', () => {
    const names = [...Object.keys(env), ...Object.keys(args)];
    expect(names.filter((name) => /PIN|PASS|SECRET|KEY$|TOKEN(?!_LABEL)/i.test(name))).toEqual([]);
    expect(dockerfile.map((i) => i.args).join('\n')).not.toMatch(/--secret\s+\w+=(?!stdin|file:|env:)/);
  });
});
