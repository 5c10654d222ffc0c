import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, link, lstat, open, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DEFAULT_KDF, type KdfParams } from '../crypto/backup-copy';
import { EntryFramer, EntryNames, MANIFEST_NAME, type ArchiveEntry, type WrittenEntry } from './archive-entries';
import { BackupArchiveError } from './archive-errors';
import { partialPath } from './stale-temporaries';
import { DEFAULT_SEGMENT_SIZE, NONCE_PREFIX_LENGTH, SALT_LENGTH, TRAILER_LENGTH, checkKdfForWriting, encodeTrailer, headerPrefix, parseHeader, sealHeader } from './archive-format';
import { checkPassphrase, deriveArchiveKeys } from './archive-keys';
import { type ArchiveManifest, type ManifestInput, buildManifest } from './archive-manifest';
import { SegmentEncryptor } from './archive-stream';
import { syncDirectory } from './fs-util';
import { KEYWARD_VERSION } from './keyward-version';

export interface ArchiveProgress {
  /** Entry bytes processed so far (before framing and encryption). */
  bytes: number;
  /** The entry being processed. */
  entry: string;
}

export interface CreateArchiveOptions {
  /** Argon2id parameters; the floor (m = 64 MiB, t = 3) is refused below. */
  kdf?: KdfParams;
  /** Manifest fields the caller knows; a function is called once every entry is written. */
  manifestExtras: ManifestInput | (() => ManifestInput | Promise<ManifestInput>);
  onProgress?: (progress: ArchiveProgress) => void;
}

export interface CreatedArchive {
  path: string;
  /** File size in bytes. */
  size: number;
  segments: number;
  manifest: ArchiveManifest;
}

/** Test hooks: a smaller segment size to get many segments cheaply, a manifest that lies. */
export interface ArchiveWriterInternals {
  segmentSize?: number;
  rewriteManifest?: (manifest: ArchiveManifest) => ArchiveManifest;
}

/**
 * Writes one encrypted archive of `entries` plus a final manifest.json. The archive is built in a
 * hidden temporary file beside `path` (created with 'wx', mode 0600) and linked to `path` only when
 * complete and synced, so `path` either does not exist or holds a whole archive; link, unlike rename,
 * never replaces a file that appeared meanwhile. An interrupted run leaves only the temporary file,
 * which verify reports as truncated.
 */
export function createArchive(path: string, passphrase: string, entries: Iterable<ArchiveEntry> | AsyncIterable<ArchiveEntry>, options: CreateArchiveOptions): Promise<CreatedArchive> {
  return writeArchive(path, passphrase, entries, options, {});
}

export async function writeArchive(
  path: string,
  passphrase: string,
  entries: Iterable<ArchiveEntry> | AsyncIterable<ArchiveEntry>,
  options: CreateArchiveOptions,
  internals: ArchiveWriterInternals,
): Promise<CreatedArchive> {
  checkPassphrase(passphrase);
  const kdf = options.kdf ?? DEFAULT_KDF;
  checkKdfForWriting(kdf);
  await refuseExisting(path);

  const salt = randomBytes(SALT_LENGTH);
  const noncePrefix = randomBytes(NONCE_PREFIX_LENGTH);
  const segmentSize = internals.segmentSize ?? DEFAULT_SEGMENT_SIZE;
  const prefix = headerPrefix({ kdf, salt, noncePrefix, segmentSize, writerVersion: KEYWARD_VERSION });
  const keys = await deriveArchiveKeys(passphrase, salt, kdf);
  const header = parseHeader(sealHeader(prefix, keys.verifier), kdf);

  const temporary = partialPath(path);
  const file = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  let fileOpen = true;
  try {
    await file.chmod(0o600); // the umask can only narrow the mode, but say it exactly
    const out = new BufferedWriter(file);
    await out.write(header.bytes);
    const stream = new SegmentEncryptor(keys.payload, header, (segment) => out.write(segment));
    const framer = new EntryFramer((bytes) => stream.write(bytes));
    const names = new EntryNames();
    const written: WrittenEntry[] = [];
    let processed = 0;
    for await (const entry of entries) {
      if (entry.name === MANIFEST_NAME) throw new BackupArchiveError('INVALID_ENTRY_NAME', `${MANIFEST_NAME} is written by the archive itself`);
      names.add(entry.name);
      written.push(
        await framer.entry(entry.name, entry.data, (count) => {
          processed += count;
          options.onProgress?.({ bytes: processed, entry: entry.name });
        }),
      );
    }
    const input = typeof options.manifestExtras === 'function' ? await options.manifestExtras() : options.manifestExtras;
    let manifest = buildManifest(input, written);
    if (internals.rewriteManifest) manifest = internals.rewriteManifest(manifest);
    // Written last, so it can list the size and hash of everything before it.
    await framer.entry(MANIFEST_NAME, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8'));
    await framer.end();
    await stream.finish();
    await out.write(encodeTrailer(out.position + TRAILER_LENGTH));
    await out.flush();
    await file.sync();
    await file.close();
    fileOpen = false;
    await publish(temporary, path);
    return { path, size: out.position, segments: stream.segments, manifest };
  } catch (error) {
    if (fileOpen) await file.close().catch(() => {});
    await unlink(temporary).catch(() => {});
    throw error;
  } finally {
    keys.payload.fill(0);
  }
}

async function refuseExisting(path: string): Promise<void> {
  try {
    await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  throw new BackupArchiveError('OUTPUT_EXISTS', `${path} already exists; an archive is never written over an existing file`);
}

/** Makes the finished temporary file visible under its name, never replacing anything. */
async function publish(temporary: string, path: string): Promise<void> {
  try {
    await link(temporary, path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new BackupArchiveError('OUTPUT_EXISTS', `${path} appeared while the archive was written; it was left untouched`);
    // Filesystems without hard links: an exclusive copy still never replaces a file.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
    try {
      await copyFile(temporary, path, constants.COPYFILE_EXCL);
    } catch (copyError) {
      if ((copyError as NodeJS.ErrnoException).code === 'EEXIST') throw new BackupArchiveError('OUTPUT_EXISTS', `${path} appeared while the archive was written; it was left untouched`);
      throw copyError;
    }
    const copied = await open(path, 'r+');
    await copied.sync().finally(() => copied.close());
  }
  await unlink(temporary);
  await syncDirectory(dirname(path));
}

/** Collects segments into ~1 MiB writes. */
class BufferedWriter {
  private buffers: Buffer[] = [];
  private buffered = 0;
  position = 0;

  constructor(private readonly file: FileHandle) {}

  async write(bytes: Buffer): Promise<void> {
    this.buffers.push(bytes);
    this.buffered += bytes.length;
    this.position += bytes.length;
    if (this.buffered >= 1024 * 1024) await this.flush();
  }

  async flush(): Promise<void> {
    const buffers = this.buffers;
    this.buffers = [];
    this.buffered = 0;
    if (buffers.length === 0) return;
    const total = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
    const { bytesWritten } = await this.file.writev(buffers);
    if (bytesWritten < total) {
      // A short write (rare on regular files): finish it byte-exactly.
      const rest = Buffer.concat(buffers).subarray(bytesWritten);
      for (let offset = 0; offset < rest.length;) offset += (await this.file.write(rest, offset)).bytesWritten;
    }
  }
}
