import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testDir } from '../support/run-dir';
import { KeywardServer } from './support/keyward-server';

jest.setTimeout(120_000);

/**
 * Issue 8 item 10: the server clears its upload directory at start. A symbolic link put in its
 * place must not have its target chmod-ed and emptied: the server refuses to start and says why.
 */
describe('web: a symbolic link in place of the upload directory', () => {
  const server = new KeywardServer('uploads-link');

  afterAll(async () => {
    await server.stop();
  });

  it('refuses to start, leaving the link target as it was; a real directory is used as before', async () => {
    const target = testDir('uploads-link-target');
    writeFileSync(join(target, 'precious.txt'), 'not keyward’s to delete\n');
    mkdirSync(join(target, 'sub'));
    chmodSync(target, 0o755);
    const link = join(server.home, 'uploads');
    symlinkSync(target, link);

    await expect(server.start()).rejects.toThrow(/uploads is a symbolic link or not a directory/);
    expect(await server.stop()).toBe(1);
    expect(statSync(target).mode & 0o777).toBe(0o755);
    expect(readdirSync(target).sort()).toEqual(['precious.txt', 'sub']);
    expect(readFileSync(join(target, 'precious.txt'), 'utf8')).toBe('not keyward’s to delete\n');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);

    unlinkSync(link);
    await server.start();
    expect(existsSync(link) && lstatSync(link).isDirectory()).toBe(true);
    expect(statSync(link).mode & 0o777).toBe(0o700);
  });
});
