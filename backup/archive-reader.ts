import { timingSafeEqual } from 'node:crypto';
import { mkdir, open, rename, rm, rmdir, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { KdfParams } from '../crypto/backup-copy';
import { MANIFEST_NAME, type WrittenEntry, parseEntries } from './archive-entries';
import { partialPath } from './stale-temporaries';
import { BackupArchiveError } from './archive-errors';
import { type ArchiveHeader, PREAMBLE_LENGTH, parseHeader, readPreamble } from './archive-format';
import { checkPassphrase, deriveArchiveKeys } from './archive-keys';
import { type ArchiveManifest, parseManifest } from './archive-manifest';
import { decryptSegments } from './archive-stream';
import { syncDirectory } from './fs-util';

export interface ArchiveHeaderInfo {
  formatVersion: number;
  /** The keyward version that wrote the archive (also in the manifest, but readable without it). */
  writerVersion: string;
  kdf: KdfParams;
  segmentSize: number;
  /** File size in bytes. */
  size: number;
}

export interface VerifiedEntry {
  name: string;
  size: number;
  sha256: string;
  /** Present in the archive and in the manifest with this size and hash. */
  ok: boolean;
}

export interface VerifiedArchive {
  header: ArchiveHeaderInfo;
  manifest: ArchiveManifest;
  /** Every entry but manifest.json, in archive order. */
  entries: VerifiedEntry[];
}

export interface ReadArchiveOptions {
  /** Archive bytes read and authenticated so far, of `total`. */
  onProgress?: (progress: { bytes: number; total: number }) => void;
  /** The most the header may ask of Argon2id (default DEFAULT_KDF_CEILING); checked before deriving. */
  kdfCeiling?: KdfParams;
}

const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

/** Decrypts the whole archive and checks every entry against the manifest; writes nothing. */
export async function verifyArchive(path: string, passphrase: string, options: ReadArchiveOptions = {}): Promise<VerifiedArchive> {
  return readArchive(path, passphrase, options, null);
}

/**
 * Extracts into `destDir`, which must not exist. Entries are written into a hidden staging
 * directory beside it while they are verified; only a fully verified archive is renamed into place.
 * `destDir` is reserved (created empty) at the start, so a concurrent extraction cannot take it.
 * On any failure, everything written is removed.
 */
export async function extractArchive(path: string, passphrase: string, destDir: string, options: ReadArchiveOptions = {}): Promise<VerifiedArchive & { destDir: string }> {
  checkPassphrase(passphrase);
  await mkdir(dirname(destDir), { recursive: true });
  try {
    await mkdir(destDir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new BackupArchiveError('OUTPUT_EXISTS', `${destDir} already exists; an archive is only extracted into a new directory`);
    throw error;
  }
  const staging = partialPath(destDir);
  let current: FileHandle | null = null;
  try {
    await mkdir(staging, { mode: 0o700 });
    const result = await readArchive(path, passphrase, options, async (name) => {
      const target = join(staging, ...name.split('/'));
      await mkdir(dirname(target), { recursive: true, mode: 0o700 });
      const file = await open(target, 'wx', 0o600);
      current = file;
      return {
        write: async (bytes: Buffer) => {
          for (let offset = 0; offset < bytes.length;) offset += (await file.write(bytes, offset)).bytesWritten;
        },
        close: async () => {
          await file.sync();
          await file.close();
          current = null;
        },
      };
    });
    await rename(staging, destDir); // replaces the empty reservation; fails if anything was put in it
    await syncDirectory(dirname(destDir));
    return { ...result, destDir };
  } catch (error) {
    await (current as FileHandle | null)?.close().catch(() => {});
    await rm(staging, { recursive: true, force: true }).catch(() => {});
    await rmdir(destDir).catch(() => {});
    throw error;
  }
}

/** Where extraction puts an entry's bytes; verify has none. */
type EntrySinkFactory = ((name: string) => Promise<EntrySink>) | null;
interface EntrySink {
  write(bytes: Buffer): Promise<void>;
  close(): Promise<void>;
}

async function readArchive(path: string, passphrase: string, options: ReadArchiveOptions, sinkFor: EntrySinkFactory): Promise<VerifiedArchive> {
  checkPassphrase(passphrase);
  const file = await open(path, 'r');
  try {
    const size = (await file.stat()).size;
    const read = async (position: number, length: number): Promise<Buffer> => {
      const buffer = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await file.read(buffer, done, length - done, position + done);
        if (bytesRead === 0) throw new BackupArchiveError('ARCHIVE_TRUNCATED', `the archive shrank while it was read (${path})`);
        done += bytesRead;
      }
      return buffer;
    };
    const headerLength = readPreamble(await read(0, Math.min(PREAMBLE_LENGTH, size)), size);
    const header = parseHeader(await read(0, headerLength), options.kdfCeiling);
    const keys = await deriveArchiveKeys(passphrase, header.salt, header.kdf);
    try {
      if (!timingSafeEqual(keys.verifier, header.verifier)) {
        throw new BackupArchiveError('WRONG_PASSPHRASE', 'the backup passphrase is wrong for this archive');
      }
      const segments = decryptSegments({ read }, size, header, keys.payload, (bytes) => options.onProgress?.({ bytes, total: size }));
      const { entries, manifest } = await collectEntries(segments, sinkFor);
      return { header: headerInfo(header, size), manifest, entries: checkAgainstManifest(entries, manifest) };
    } finally {
      keys.payload.fill(0);
    }
  } finally {
    await file.close();
  }
}

async function collectEntries(segments: AsyncIterable<Buffer>, sinkFor: EntrySinkFactory): Promise<{ entries: WrittenEntry[]; manifest: ArchiveManifest }> {
  const entries: WrittenEntry[] = [];
  let manifestParts: Buffer[] | null = null;
  let manifestLength = 0;
  let manifestDone = false;
  let sink: EntrySink | null = null;
  await parseEntries(segments, {
    begin: async (name) => {
      if (manifestDone) throw new BackupArchiveError('MANIFEST_INVALID', `${MANIFEST_NAME} is not the last entry of the archive (${JSON.stringify(name)} follows it)`);
      const made = sinkFor === null ? null : await sinkFor(name);
      sink = made;
      if (name === MANIFEST_NAME) {
        const parts: Buffer[] = [];
        manifestParts = parts;
        return async (bytes: Buffer) => {
          manifestLength += bytes.length;
          if (manifestLength > MAX_MANIFEST_BYTES) throw new BackupArchiveError('MANIFEST_INVALID', `${MANIFEST_NAME} is larger than ${MAX_MANIFEST_BYTES} bytes`);
          parts.push(Buffer.from(bytes));
          await made?.write(bytes);
        };
      }
      return made === null ? () => {} : (bytes: Buffer) => made.write(bytes);
    },
    end: async (entry) => {
      await sink?.close();
      sink = null;
      if (entry.name === MANIFEST_NAME) manifestDone = true;
      else entries.push(entry);
    },
  });
  if (manifestParts === null) throw new BackupArchiveError('MANIFEST_INVALID', `the archive has no ${MANIFEST_NAME}`);
  return { entries, manifest: parseManifest(Buffer.concat(manifestParts)) };
}

function checkAgainstManifest(entries: WrittenEntry[], manifest: ArchiveManifest): VerifiedEntry[] {
  const listed = new Map<string, WrittenEntry>();
  for (const entry of manifest.entries) {
    if (listed.has(entry.name)) throw new BackupArchiveError('MANIFEST_INVALID', `the manifest lists ${JSON.stringify(entry.name)} twice`);
    listed.set(entry.name, entry);
  }
  const problems: string[] = [];
  const result: VerifiedEntry[] = entries.map((entry) => {
    const expected = listed.get(entry.name);
    listed.delete(entry.name);
    if (!expected) problems.push(`${entry.name} (not in the manifest)`);
    else if (expected.size !== entry.size) problems.push(`${entry.name} (${entry.size} bytes, the manifest says ${expected.size})`);
    else if (expected.sha256 !== entry.sha256) problems.push(`${entry.name} (SHA-256 differs from the manifest)`);
    return { ...entry, ok: expected !== undefined && expected.size === entry.size && expected.sha256 === entry.sha256 };
  });
  for (const missing of listed.values()) {
    problems.push(`${missing.name} (in the manifest, missing from the archive)`);
    result.push({ name: missing.name, size: missing.size, sha256: missing.sha256, ok: false });
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 5).join('; ') + (problems.length > 5 ? `; and ${problems.length - 5} more` : '');
    throw new BackupArchiveError('MANIFEST_MISMATCH', `the archive does not match its manifest: ${shown}`, { entries: result });
  }
  return result;
}

function headerInfo(header: ArchiveHeader, size: number): ArchiveHeaderInfo {
  return { formatVersion: header.formatVersion, writerVersion: header.writerVersion, kdf: { ...header.kdf }, segmentSize: header.segmentSize, size };
}
