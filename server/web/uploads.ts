import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { UploadedFile } from './multipart';

/**
 * The TLS import effects read files by path (as the CLI gives them), so an upload is written to a
 * private file (0600 in a 0700 directory under the keyward home) for as long as the event takes,
 * then deleted. Messages that name the private path are rewritten to name the uploaded file.
 */
export class UploadArea {
  constructor(private readonly dir: string) {}

  /** Deletes what a crashed process left behind. */
  async clear(): Promise<void> {
    await this.ensureOwnDirectory();
    for (const entry of await readdir(this.dir)) await rm(join(this.dir, entry), { force: true, recursive: true });
  }

  async with<T>(files: UploadedFile[], use: (paths: string[], describe: (message: string) => string) => Promise<T>): Promise<T> {
    await this.ensureOwnDirectory();
    const written: Array<{ path: string; file: UploadedFile }> = [];
    try {
      for (const file of files) {
        const path = join(this.dir, `upload-${randomBytes(12).toString('hex')}`);
        await writeFile(path, file.data, { mode: 0o600, flag: 'wx' });
        written.push({ path, file });
      }
      const describe = (message: string) => written.reduce((text, { path, file }) => text.split(path).join(`"${file.filename || file.field}"`), message);
      return await use(
        written.map((w) => w.path),
        describe,
      );
    } finally {
      for (const { path } of written) await rm(path, { force: true });
    }
  }

  /**
   * Creates the directory, or opens the existing one without following a link (O_NOFOLLOW), and
   * sets 0700 on what was opened: a symbolic link put in its place would otherwise have its target
   * chmod-ed and emptied at start, and receive the uploads.
   */
  private async ensureOwnDirectory(): Promise<void> {
    await mkdir(dirname(this.dir), { recursive: true });
    await mkdir(this.dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
    let handle;
    try {
      handle = await open(this.dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'ENOTDIR') throw new Error(`${this.dir} is a symbolic link or not a directory: keyward keeps uploads only in a directory of its own; remove it (nothing in it or behind it was touched)`);
      throw error;
    }
    try {
      await handle.chmod(0o700);
    } finally {
      await handle.close();
    }
  }
}
