import { CliHome } from '../support/cli';
import { newSecret } from '../support/secrets';
import { SOFTHSM_MODULE } from '../support/softhsm';

/**
 * The CLI ends every error through the one error table: the exit code is the code's, the first line
 * is the sentence, and the code follows as a detail.
 */
jest.setTimeout(120_000);

const HSM = { hsmType: 'softhsm', modulePath: SOFTHSM_MODULE, label: 'Busy-Token' };

describe('the CLI and the error table', () => {
  const cli = new CliHome('cli-errors');

  it('wrong usage: exit 2, the sentence, the code as a detail, then the usage', () => {
    const run = cli.run(['send']);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/^keyward: send needs an EVENT\n {2}\(error code USAGE, exit 2\)\n\nusage: keyward/);
  });

  it('an event while an effect runs in a live process: busy, exit 3, nothing changed', async () => {
    expect(cli.run(['boot']).status).toBe(0);
    expect(cli.send('SELECT_STORAGE', { storageType: 'softhsm' }).status).toBe(0);
    const args = ['send', 'SETUP_HSM', '--payload', JSON.stringify(HSM), '--secret', `pin=file:${cli.secretFile(newSecret('pin'))}`, '--secret', `soPin=file:${cli.secretFile(newSecret('sopin'))}`];
    const child = cli.spawn(args, { KEYWARD_CRASH_AT: 'setUpToken:start' });
    child.stdin!.end();
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        let stderr = '';
        const timer = setTimeout(() => reject(new Error(`the checkpoint was not reached: ${stderr}`)), 30_000);
        child.stderr!.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          if (stderr.includes('paused at checkpoint setUpToken:start')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      const revision = cli.inspect().revision;
      const run = cli.send('CHOOSE_FRESH');
      expect(run.status).toBe(3);
      expect(run.stderr).toMatch(/^keyward: keyward is busy: effect setUpToken is running in process \d+ on .+; nothing was changed: wait for it and try again\n {2}\(error code BUSY, exit 3\)\n$/);
      expect(cli.inspect().revision).toBe(revision);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  });
});
