import { execFileSync } from 'node:child_process';
import { CliHome } from '../support/cli';
import { TOKEN_LABEL } from '../support/install';
import { newSecret } from '../support/secrets';
import { SoftHsm, SOFTHSM_MODULE } from '../support/softhsm';

/**
 * A physical-HSM outage waited out by a real `keyward start`, with no event sent by anyone: the
 * machine's `outage` state declares a BOOT after the `outageRetry` delay (KEYWARD_OUTAGE_RETRY_SECONDS),
 * and the server arms it from the state it reads — the one persisted before it started included.
 */
jest.setTimeout(120_000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, read: () => T, holds: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (holds(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms: ${JSON.stringify(value)}`);
    await sleep(250);
  }
}

describe('physical-HSM outage retry in a running server', () => {
  it('BOOTs again after the retry delay, while the token is away and once it is back, and is operational by itself', async () => {
    const hsm = new SoftHsm('outage-retry');
    const cli = new CliHome('outage-retry', { SOFTHSM2_CONF: hsm.conf });
    expect(cli.run(['boot']).status).toBe(0);
    // A physical HSM's token is made with the vendor's tools, never by keyward.
    const token = hsm.initToken(TOKEN_LABEL);
    const steps: Array<[string, Record<string, unknown> | undefined, Record<string, string>]> = [
      ['SELECT_STORAGE', { storageType: 'physical_hsm' }, {}],
      ['SETUP_HSM', { hsmType: 'physical', modulePath: SOFTHSM_MODULE, label: TOKEN_LABEL, slot: null }, { pin: token.pin }],
      ['CHOOSE_FRESH', undefined, {}],
      ['GENERATE_TLS', { subjectAltNames: ['localhost', '127.0.0.1'] }, {}],
      ['APPLY_TLS', undefined, {}],
      ['SET_BACKUP_PASSWORD', undefined, { password: `Bk-${newSecret('backup')}` }],
      ['SKIP_DEMO_DATA', undefined, {}],
      ['CREATE_ADMIN', { username: 'admin' }, { password: `Ad-${newSecret('admin')}` }],
    ];
    for (const [event, payload, given] of steps) expect([event, cli.send(event, payload, given).status]).toEqual([event, 0]);
    expect(cli.inspect().state).toBe('operational');

    // The token goes out of reach (a network HSM down) before the server starts.
    const away = `${hsm.tokenDir}.away`;
    execFileSync('mv', [hsm.tokenDir, away]);
    execFileSync('mkdir', ['-p', hsm.tokenDir]);
    const server = cli.spawn(['start'], { KEYWARD_HOST: '127.0.0.1', KEYWARD_PORT: '0', KEYWARD_OUTAGE_RETRY_SECONDS: '1', KEYWARD_WATCH_INTERVAL_MS: '300' });
    server.stdin!.end();
    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
    try {
      const retries = () => cli.inspect().history.filter((row) => row.eventType === 'BOOT' && row.source === 'outage-retry');
      await until(
        'the outage',
        () => cli.inspect().state,
        (state) => state === 'outage.waiting',
      );
      // Retried while the token is still away: each retry a BOOT of its own, each back to the outage.
      await until('two retries', retries, (rows) => rows.length >= 2);
      expect(cli.inspect().state).toBe('outage.waiting');

      execFileSync('rm', ['-rf', hsm.tokenDir]);
      execFileSync('mv', [away, hsm.tokenDir]);
      await until(
        'operation',
        () => cli.inspect().state,
        (state) => state === 'operational',
      );
      const last = retries().at(-1)!;
      expect(last.toState).not.toBe('outage.waiting');
      // Operational: no more retries.
      const count = retries().length;
      await sleep(2500);
      expect(retries().length).toBe(count);
    } finally {
      server.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
