import { setFlagsFromString } from 'node:v8';

/**
 * Imported first by the CLI, before anything allocates: keyward streams large files (uploads,
 * archives) in chunks, each a fresh buffer that only a young-generation collection frees. Left to
 * itself V8 grows the young generation (up to two 16 MB semi-spaces) while keyward starts, and a
 * large upload then leaves tens of megabytes of spent chunks resident between collections; kept at
 * its initial size it is collected every megabyte or two. A service that mostly waits has no use
 * for a bigger nursery.
 */
setFlagsFromString('--semi-space-growth-factor=1');
