import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CliHome } from '../support/cli';

/** The real CLI refuses an option it does not know, before it touches the home. */
describe('CLI usage errors', () => {
  const cli = new CliHome('usage');

  it('exits 2 naming an unknown option, and creates no store', () => {
    for (const args of [
      ['inspect', '--jsno=true'],
      ['inspect', '--jsno', '--history', '3'],
      ['boot', '--fresh', '--json'],
    ]) {
      const run = cli.run(args);
      const name = args[1]!.split('=')[0]!;
      expect({ args, status: run.status, stdout: run.stdout }).toEqual({ args, status: 2, stdout: '' });
      expect(run.stderr).toContain(`keyward: unknown option ${name} for \`keyward ${args[0]}\``);
      expect(run.stderr).toContain('usage: keyward <command> [options]');
    }
    expect(existsSync(join(cli.home, 'keyward.sqlite'))).toBe(false);
  });

  it('exits 2 for a switch given a value and an option missing its value', () => {
    expect(cli.run(['inspect', '--json=no'])).toMatchObject({ status: 2, stderr: expect.stringContaining('keyward: --json takes no value') });
    expect(cli.run(['inspect', '--history'])).toMatchObject({ status: 2, stderr: expect.stringContaining('keyward: --history needs a value') });
  });
});
