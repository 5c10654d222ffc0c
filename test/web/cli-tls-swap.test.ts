import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { CLI, KeywardServer } from './support/keyward-server';
import { servedFingerprint } from './support/tls-probe';

jest.setTimeout(60_000);

/**
 * Two writers, one lifecycle: the CLI applies a TLS credential while the web server runs. The server
 * notices the new revision, serves the new certificate without a restart, and says so on its console.
 */
describe('web: a TLS credential applied by another process', () => {
  const server = new KeywardServer('cli-swap');

  afterAll(async () => {
    await server.stop();
  });

  const cli = (...args: string[]) => {
    const result = spawnSync(process.execPath, [CLI, ...args], {
      env: { ...process.env, KEYWARD_HOME: server.home, SOFTHSM2_CONF: join(server.home, 'softhsm2.conf'), KEYWARD_TLS_SANS: 'localhost,127.0.0.1', DATABASE_URL: '' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (result.status !== 0) throw new Error(`keyward ${args.join(' ')}: exit ${result.status}: ${result.stderr}`);
    return result.stdout;
  };

  it('is served live, and the console announces it', async () => {
    await server.start();
    const before = servedFingerprint(server.port);
    cli('send', 'SELECT_STORAGE', '--payload', '{"storageType":"software"}');
    cli('send', 'CHOOSE_FRESH');
    cli('send', 'GENERATE_TLS', '--payload', '{"subjectAltNames":["localhost"]}');
    cli('send', 'APPLY_TLS', '--source', 'operator-cli');
    const applied = (JSON.parse(cli('inspect', '--json')) as { context: { tls: { fingerprintSha256: string } } }).context.tls.fingerprintSha256;
    expect(applied).not.toBe(before);

    const announced = await server.waitFor(new RegExp(`now serving TLS SHA-256 ${applied}`), 10_000);
    expect(announced).toBeTruthy();
    expect(servedFingerprint(server.port)).toBe(applied);
  });
});
