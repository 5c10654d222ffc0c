import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { UploadedFile } from './multipart';

/**
 * The TLS import and restore effects read files by path (as the CLI gives them), so an upload is
 * streamed to a private file (0600 in a 0700 directory under the keyward home) as it arrives, kept
 * for as long as its request takes, then deleted. Messages that name the private path are rewritten
 * to name the uploaded file.
 */
export class UploadArea {
  constructor(private readonly dir: string) {}

  /** Deletes what a crashed process left behind. */
  async clear(): Promise<void> {
    await this.ensureOwnDirectory();
    for (const entry of await readdir(this.dir)) await rm(join(this.dir, entry), { force: true, recursive: true });
  }

  /** Writes one uploaded file's content, as it arrives, to a new private file; removed again if the content fails. */
  async receive(content: Readable): Promise<{ path: string; size: number }> {
    await this.ensureOwnDirectory();
    const path = join(this.dir, `upload-${randomBytes(12).toString('hex')}`);
    const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    const sink = handle.createWriteStream();
    try {
      await pipeline(content, sink);
    } catch (error) {
      await this.discard([path]);
      throw error;
    }
    return { path, size: sink.bytesWritten };
  }

  async discard(paths: string[]): Promise<void> {
    for (const path of paths) await rm(path, { force: true });
  }

  /** Runs `use` on the uploaded files' paths, with `describe` to name them in messages; deletes them after. */
  async with<T>(files: UploadedFile[], use: (paths: string[], describe: (message: string) => string) => Promise<T>): Promise<T> {
    try {
      const describe = (message: string) => files.reduce((text, file) => text.split(file.path).join(`"${file.filename || file.field}"`), message);
      return await use(
        files.map((file) => file.path),
        describe,
      );
    } finally {
      await this.discard(files.map((file) => file.path));
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
      if (code === 'ELOOP' || code === 'ENOTDIR')
        throw new Error(`${this.dir} is a symbolic link or not a directory: keyward keeps uploads only in a directory of its own; remove it (nothing in it or behind it was touched)`, {
          cause: error,
        });
      throw error;
    }
    try {
      await handle.chmod(0o700);
    } finally {
      await handle.close();
    }
  }
}
