import { ChildProcess, spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { Store } from '../../db/store';
import { DekKeyring } from '../../crypto/dek-keyring';
import { CLI, CliHome } from '../support/cli';
import { completeSoftHsmWizard, withStore, wizardSecrets } from '../support/wizard';
import { servedFingerprint } from '../web/support/tls-probe';

jest.setTimeout(600_000);

const ROUNDS = 20;
const PARALLEL = 5;

/**
 * A present token is never taken for a lost one (issue 8, item 1). Five `keyward boot` at once
 * against a running SoftHSM install: each probe rescans the module while the others do, and one
 * empty scan once sent the install to auto-restore, deactivated its token CAs and swapped a
 * temporary certificate into the live server.
 */
describe('parallel BOOTs against a running SoftHSM server', () => {
  let cli: CliHome;
  let server: ChildProcess;
  let port = 0;

  /** Every CA with its status, read straight from the database (no DEK needed). */
  async function caStatuses(): Promise<unknown[]> {
    const store = Store.open({ client: 'sqlite', filename: join(cli.home, 'keyward.sqlite') }, new DekKeyring());
    try {
      return (await store.cas.list()).map((ca) => ({ name: ca.name, active: ca.active, reason: ca.deactivationReason }));
    } finally {
      await store.close();
    }
  }

  function readyz(): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/readyz', rejectUnauthorized: false, timeout: 10_000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
  }

  /** `keyward boot` in a process of its own; resolves with its exit code. */
  function boot(): Promise<{ status: number | null; output: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, 'boot'], { env: cli.env, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.on('exit', (status) => {
        appendFileSync(cli.log, `$ keyward boot (parallel)\n${output}[exit ${status}]\n`);
        resolve({ status, output });
      });
    });
  }

  beforeAll(async () => {
    cli = new CliHome('parallel-boot');
    expect(cli.run(['boot']).status).toBe(0);
    completeSoftHsmWizard(cli, wizardSecrets());
    await withStore(cli, async (store) => {
      await store.cas.create({ name: 'token-ca', keyLocation: 'token', tokenKeyLabel: 'ca-key' });
      const credentialId = await store.credentials.create({ name: 'issuing', privateKeyPem: '-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n' });
      await store.cas.create({ name: 'db-ca', keyLocation: 'db', credentialId });
    });
    server = cli.spawn(['start'], { KEYWARD_HOST: '127.0.0.1', KEYWARD_PORT: '0', KEYWARD_WATCH_INTERVAL_MS: '300' });
    port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`the server did not serve within 30 s:\n${out}`)), 30_000);
      server.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /serving https:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      server.on('exit', (code) => reject(new Error(`the server exited (${code}):\n${out}`)));
    });
  });

  afterAll(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGTERM');
      await exited;
    }
  });

  it(`${ROUNDS} rounds of ${PARALLEL} parallel boots: operational, ready, same certificate, same CAs`, async () => {
    expect(cli.inspect().state).toBe('operational');
    expect(await readyz()).toBe(200);
    const certificate = servedFingerprint(port);
    const cas = await caStatuses();
    expect(cas).toEqual([
      { name: 'token-ca', active: true, reason: null },
      { name: 'db-ca', active: true, reason: null },
    ]);

    for (let round = 1; round <= ROUNDS; round += 1) {
      const before = cli.inspect().revision;
      const runs = await Promise.all(Array.from({ length: PARALLEL }, () => boot()));
      const inspection = cli.inspect();
      // Not one BOOT of the round left operational, even for a step.
      const visited = inspection.history.filter((row) => (row.revision as number) > before).map((row) => row.toState as string);
      const left = visited.filter((state) => !state.startsWith('startup.') && state !== 'operational');
      const exits = runs.map((r) => r.status);
      expect({ round, exits, state: inspection.state, left }).toEqual({ round, exits: Array(PARALLEL).fill(0), state: 'operational', left: [] });
      expect({ round, scenarios: visited.filter((s) => s.startsWith('startup.restoring.RESTORE_')).filter((s) => !s.includes('DEK_CACHED')) }).toEqual({ round, scenarios: [] });
      // The live server has caught up with the last BOOT: ready, and serving the certificate it served.
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect({ round, readyz: await readyz() }).toEqual({ round, readyz: 200 });
      expect({ round, certificate: servedFingerprint(port) }).toEqual({ round, certificate });
      expect({ round, cas: await caStatuses() }).toEqual({ round, cas });
    }
  });
});
