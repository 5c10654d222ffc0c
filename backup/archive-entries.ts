import { createHash } from 'node:crypto';
import { BackupArchiveError } from './archive-errors';

/**
 * Entry framing inside the decrypted payload (docs/backup-format.md §5):
 *
 *   entry := 0x45 'E' || u16 nameLength || name (UTF-8) || chunk* || u32 0
 *   chunk := u32 length (≥ 1) || bytes
 *   end   := 0x2E '.'
 *
 * Chunked rather than length-prefixed so a stream of unknown length (a database export) is written
 * as it is produced, never buffered whole.
 */
export const ENTRY_TAG = 0x45;
export const END_TAG = 0x2e;
export const MANIFEST_NAME = 'manifest.json';
const MAX_NAME_BYTES = 1024;
const MAX_CHUNK = 1024 * 1024;

export type EntryData = Buffer | Uint8Array | AsyncIterable<Buffer | Uint8Array | string>;

export interface ArchiveEntry {
  /** A relative path with '/' separators: no '..', no '.', no empty segment, no leading '/'. */
  name: string;
  data: EntryData;
}

/** Refuses names that could escape the extraction directory or mean different things on different systems. */
export function checkEntryName(name: unknown): asserts name is string {
  const bad = (why: string) => new BackupArchiveError('INVALID_ENTRY_NAME', `entry name ${JSON.stringify(String(name).slice(0, 200))} is refused: ${why}`);
  if (typeof name !== 'string' || name.length === 0) throw bad('it is empty');
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) throw bad(`it is longer than ${MAX_NAME_BYTES} bytes`);
  if (/[\u0000-\u001f\u007f\\:]/.test(name)) throw bad('it contains a control character, a backslash or a colon');
  if (name.startsWith('/')) throw bad('it is absolute');
  for (const segment of name.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') throw bad('it has an empty, "." or ".." path segment');
  }
  if (name.normalize('NFC') !== name) throw bad('it is not in Unicode normal form C');
}

/** Tracks names so no entry is given twice and no entry is both a file and a directory. */
export class EntryNames {
  private readonly files = new Set<string>();
  private readonly directories = new Set<string>();

  add(name: string): void {
    checkEntryName(name);
    if (this.files.has(name)) throw new BackupArchiveError('INVALID_ENTRY_NAME', `entry ${JSON.stringify(name)} appears twice`);
    if (this.directories.has(name)) throw new BackupArchiveError('INVALID_ENTRY_NAME', `entry ${JSON.stringify(name)} is also a directory of another entry`);
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const directory = parts.slice(0, i).join('/');
      if (this.files.has(directory)) throw new BackupArchiveError('INVALID_ENTRY_NAME', `entry ${JSON.stringify(name)} lies under entry ${JSON.stringify(directory)}, which is a file`);
    }
    for (let i = 1; i < parts.length; i++) this.directories.add(parts.slice(0, i).join('/'));
    this.files.add(name);
  }
}

export interface WrittenEntry {
  name: string;
  size: number;
  sha256: string;
}

/** Writes framed entries into the payload stream, hashing each. */
export class EntryFramer {
  constructor(private readonly out: (bytes: Buffer) => Promise<void>) {}

  async entry(name: string, data: EntryData, onBytes?: (count: number) => void): Promise<WrittenEntry> {
    const nameBytes = Buffer.from(name, 'utf8');
    const start = Buffer.alloc(3);
    start[0] = ENTRY_TAG;
    start.writeUInt16BE(nameBytes.length, 1);
    await this.out(Buffer.concat([start, nameBytes]));
    const hash = createHash('sha256');
    let size = 0;
    const chunk = async (bytes: Buffer) => {
      if (bytes.length === 0) return;
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length, 0);
      hash.update(bytes);
      size += bytes.length;
      await this.out(length);
      await this.out(bytes);
      onBytes?.(bytes.length);
    };
    if (data instanceof Uint8Array) {
      const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      for (let offset = 0; offset < bytes.length; offset += MAX_CHUNK) await chunk(bytes.subarray(offset, offset + MAX_CHUNK));
    } else {
      for await (const piece of data) {
        const bytes = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
        for (let offset = 0; offset < bytes.length; offset += MAX_CHUNK) await chunk(bytes.subarray(offset, offset + MAX_CHUNK));
      }
    }
    await this.out(Buffer.alloc(4));
    return { name, size, sha256: hash.digest('hex') };
  }

  async end(): Promise<void> {
    await this.out(Buffer.from([END_TAG]));
  }
}

export interface EntryVisitor {
  /** Called when an entry starts; returns where its bytes go. */
  begin(name: string): Promise<(bytes: Buffer) => Promise<void> | void> | ((bytes: Buffer) => Promise<void> | void);
  end(entry: WrittenEntry): Promise<void> | void;
}

/** Reads framed entries from the decrypted payload, streaming each entry's bytes to the visitor. */
export async function parseEntries(plaintext: AsyncIterable<Buffer>, visitor: EntryVisitor): Promise<void> {
  const reader = new ByteReader(plaintext[Symbol.asyncIterator]());
  const malformed = (why: string) => new BackupArchiveError('ARCHIVE_CORRUPT', `the archive's entry framing is malformed: ${why}`);
  const names = new EntryNames();
  try {
    for (;;) {
      const tag = await reader.exact(1, malformed);
      if (tag[0] === END_TAG) break;
      if (tag[0] !== ENTRY_TAG) throw malformed(`unexpected record type 0x${tag[0]!.toString(16)}`);
      const nameLength = (await reader.exact(2, malformed)).readUInt16BE(0);
      const name = (await reader.exact(nameLength, malformed)).toString('utf8');
      names.add(name);
      const sink = await visitor.begin(name);
      const hash = createHash('sha256');
      let size = 0;
      for (;;) {
        let remaining = (await reader.exact(4, malformed)).readUInt32BE(0);
        if (remaining === 0) break;
        while (remaining > 0) {
          const bytes = await reader.some(remaining, malformed);
          remaining -= bytes.length;
          size += bytes.length;
          hash.update(bytes);
          await sink(bytes);
        }
      }
      await visitor.end({ name, size, sha256: hash.digest('hex') });
    }
    if (!(await reader.atEnd())) throw malformed('bytes follow the end of the entries');
  } finally {
    await reader.close();
  }
}

class ByteReader {
  private current: Buffer = Buffer.alloc(0);
  private offset = 0;

  constructor(private readonly source: AsyncIterator<Buffer>) {}

  async atEnd(): Promise<boolean> {
    return !(await this.fill());
  }

  async exact(length: number, malformed: (why: string) => Error): Promise<Buffer> {
    if (this.current.length - this.offset >= length) {
      const out = this.current.subarray(this.offset, this.offset + length);
      this.offset += length;
      return out;
    }
    const parts: Buffer[] = [];
    let needed = length;
    while (needed > 0) {
      const bytes = await this.some(needed, malformed);
      parts.push(bytes);
      needed -= bytes.length;
    }
    return Buffer.concat(parts, length);
  }

  /** Between 1 and `max` bytes, without copying. */
  async some(max: number, malformed: (why: string) => Error): Promise<Buffer> {
    if (!(await this.fill())) throw malformed('the payload ends inside an entry');
    const take = Math.min(max, this.current.length - this.offset);
    const out = this.current.subarray(this.offset, this.offset + take);
    this.offset += take;
    return out;
  }

  async close(): Promise<void> {
    await this.source.return?.();
  }

  private async fill(): Promise<boolean> {
    while (this.offset >= this.current.length) {
      const next = await this.source.next();
      if (next.done) return false;
      this.current = next.value;
      this.offset = 0;
    }
    return true;
  }
}
