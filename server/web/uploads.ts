import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    for (const entry of await readdir(this.dir)) await rm(join(this.dir, entry), { force: true, recursive: true });
  }

  async with<T>(files: UploadedFile[], use: (paths: string[], describe: (message: string) => string) => Promise<T>): Promise<T> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
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
}
