import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/**
 * Imported first by the CLI, before anything allocates: keyward streams large files (uploads,
 * archives) in chunks, each a fresh buffer freed only by a young-generation collection, and V8
 * counts those buffers against the young generation's size. Left to itself V8 grows the young
 * generation to two 16 MB semi-spaces while keyward starts, and a large upload then holds some 30 MB
 * of spent chunks between collections, on top of the grown nursery; kept at its initial size
 * (2 MB) it is collected every megabyte or two.
 */
setFlagsFromString('--semi-space-growth-factor=1');

/**
 * What the server lets the young generation grow to (the restore-stream test holds it to its bound):
 * two 16 MB semi-spaces, what node lets any server grow to. With 8 MB (two 4 MB semi-spaces) a
 * scavenge came every 3 MB the status page allocated and found some 40 % of it still reachable
 * (responses in flight on the sockets), so collections took a seventh of the page's time; a 60 MiB
 * upload stays 12 MB over the grown idle server either way.
 */
export const SERVER_YOUNG_GENERATION_BYTES = 32 * 1024 * 1024;

/**
 * For a process that serves requests: lets the young generation grow while it serves, up to `bytes`,
 * then holds it there. V8 grows it by doubling at most once per collection; it is checked after each.
 */
export function growYoungGenerationUpTo(bytes: number): void {
  const youngBytes = () => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? bytes;
  if (youngBytes() >= bytes) return;
  const collections = new PerformanceObserver(() => {
    if (youngBytes() < bytes) return;
    setFlagsFromString('--semi-space-growth-factor=1');
    collections.disconnect();
  });
  collections.observe({ entryTypes: ['gc'] });
  setFlagsFromString('--semi-space-growth-factor=2');
}
