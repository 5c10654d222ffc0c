import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, cli, softHsmInstallByCli } from './installs';
import { BenchReport, interleave, scaled, printBench } from './measure';

const RUNS = scaled(9, 3);
const READY_BODY = 'ready: operational\n';

const DEFINITIONS = [
  'node starting on the same host, requiring every node_modules file (native addons included) that `keyward start` loaded, in the same order ' +
    "(recorded from an untimed `keyward start` with a preloaded recorder), then serving a bare node:https handler with keyward's TLS key and " +
    "certificate (TLSv1.2 minimum) that answers /readyz with keyward's body. Both timed the same way: from spawn to the first 200 on /readyz, " +
    'polling as soon as the process prints its URL; each start is a new process, stopped with SIGTERM after its answer.',
];

/**
 * `npm run bench -- startup`: time from `keyward start` (a restart of a completed SoftHSM install:
 * VERSION_MATCH, DEK unwrapped with the KEK) to its first successful HTTPS request, /readyz answering
 * "ready: operational", against node loading the same dependencies and serving a bare HTTPS handler.
 * The two alternate; medians.
 */
export async function run(): Promise<BenchReport> {
  const root = mkdtempSync(join(tmpdir(), 'keyward-bench-startup-'));
  try {
    const { env, home } = softHsmInstallByCli(root);
    const keywardEnv = { ...env, KEYWARD_PORT: '0', KEYWARD_HOST: '127.0.0.1' };
    const modules = join(root, 'modules.json');
    await timeToFirstAnswer(['-r', join(__dirname, 'record-modules.js'), CLI, 'start'], { ...keywardEnv, BENCH_MODULES_OUT: modules }, /serving (https:\/\/127\.0\.0\.1:\d+\/)/, READY_BODY);
    const loaded = JSON.parse(readFileSync(modules, 'utf8')) as string[];
    if (loaded.length === 0) throw new Error('the recorder saw no node_modules file loaded by keyward start');
    const bareEnv = { ...process.env, BARE_MODULES: modules, BARE_KEY: join(home, 'tls', 'server.key'), BARE_CERT: join(home, 'tls', 'fullchain.crt'), BARE_READYZ_BODY: READY_BODY };

    const times = await interleave(
      RUNS,
      () => timeToFirstAnswer([CLI, 'start'], keywardEnv, /serving (https:\/\/127\.0\.0\.1:\d+\/)/, READY_BODY),
      () => timeToFirstAnswer([join(__dirname, 'bare-start.js')], bareEnv, /bare serving (https:\/\/127\.0\.0\.1:\d+\/)/, READY_BODY),
    );
    const inspection = JSON.parse(cli(env, ['inspect', '--json', '--history', '0']).stdout) as { state: string; scenario: string; versionScenario: string };
    if (inspection.state !== 'operational' || inspection.scenario !== 'RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED' || inspection.versionScenario !== 'VERSION_MATCH') {
      throw new Error(`the timed starts were not VERSION_MATCH + RESTORE_SOFTHSM_WIZARD_COMPLETED_DEK_CACHED: ${JSON.stringify(inspection)}`);
    }
    return {
      bench: 'startup',
      definitions: [...DEFINITIONS, `${loaded.length} node_modules files loaded by keyward start.`],
      results: [
        {
          name: `start to first HTTPS 200: keyward start (SoftHSM, VERSION_MATCH, DEK unwrapped) vs node + same deps + bare HTTPS (median of ${RUNS})`,
          value: times.ours,
          unit: 'ms',
          baseline: times.baseline,
          ratio: times.baseline / times.ours,
        },
      ],
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * Milliseconds from spawning `node ARGS` to the first 200 with `body` on /readyz. The URL is taken
 * from the process's output as soon as it appears; until the answer is 200 the request is repeated.
 */
async function timeToFirstAnswer(args: string[], env: NodeJS.ProcessEnv, ready: RegExp, body: string): Promise<number> {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${args.join(' ')} printed no URL in 60 s:\n${output}`)), 60_000);
      const look = (chunk: Buffer) => {
        output += chunk.toString();
        const match = ready.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      };
      child.stdout.on('data', look);
      child.stderr.on('data', look);
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${args.join(' ')} exited (${code}) before serving:\n${output}`));
      });
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const answer = await get(new URL('/readyz', url)).catch(() => null);
      if (answer && answer.status === 200) {
        if (answer.body !== body) throw new Error(`${args.join(' ')} answered /readyz with ${JSON.stringify(answer.body)}`);
        return Number(process.hrtime.bigint() - started) / 1e6;
      }
      if (Date.now() > deadline) throw new Error(`${args.join(' ')} did not answer 200 in 60 s:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  } finally {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  }
}

/** One request on a new connection, as a client's first request is. */
function get(url: URL): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, rejectUnauthorized: false, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

if (require.main === module) void printBench('startup', run);
