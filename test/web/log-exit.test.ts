import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../server/config';

/**
 * The server's logger batches a turn's lines (server/web/logger.ts): a process that exits in that
 * turn, by an uncaught error or process.exit, still writes them, in order, before it goes.
 */
describe("the server's log when the process ends", () => {
  const logger = join(PROJECT_ROOT, 'dist', 'server', 'web', 'logger.js');
  const run = (ending: string) =>
    spawnSync(process.execPath, ['-e', `const log = require(${JSON.stringify(logger)}).createLogger('info'); log.info('first'); log.warn('second'); ${ending}`], { encoding: 'utf8' });

  it.each([
    ['an uncaught error', "throw new Error('crashed')", 1],
    ['process.exit', 'process.exit(3)', 3],
    ['the end of its work', '', 0],
  ])('keeps the lines of the last turn at %s', (_name, ending, status) => {
    const child = run(ending);
    expect(child.status).toBe(status);
    const messages = child.stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { msg: string }).msg);
    expect(messages).toEqual(['first', 'second']);
  });
});
