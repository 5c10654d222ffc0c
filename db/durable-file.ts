import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Replaces a small file so that a crash leaves the old content or the new, never a torn one: written
 * beside it, flushed, renamed over it, and (unless the caller can lose the rename) the rename itself
 * flushed with the directory.
 */
export function writeFileDurably(path: string, text: string, options: { syncDirectory?: boolean } = {}): void {
  const temporary = `${path}.${process.pid}.tmp`;
  const fd = openSync(temporary, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  if (options.syncDirectory ?? true) syncDirectory(dirname(path));
}

/** Makes the entries of a directory (a rename into it) durable. */
export function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
