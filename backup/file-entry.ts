import { createReadStream } from 'node:fs';
import type { ArchiveEntry } from './archive-entries';

/** An entry streamed from a file on disk, read only when the archive writer reaches it. */
export function fileEntry(name: string, path: string): ArchiveEntry {
  return {
    name,
    data: {
      [Symbol.asyncIterator]: () => createReadStream(path, { highWaterMark: 256 * 1024 })[Symbol.asyncIterator](),
    },
  };
}
