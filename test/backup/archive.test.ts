import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type ArchiveEntry, compareArchiveVersions, createArchive, extractArchive, KEYWARD_VERSION, verifyArchive } from '../../backup';
import { checkEntryName } from '../../backup/archive-entries';
import { type ArchiveWriterInternals, type CreateArchiveOptions, writeArchive } from '../../backup/archive-writer';
import { testDir } from '../support/run-dir';
import { newSecret } from '../support/secrets';
import { expectArchiveError, readPerDocs, sha256 } from './archive-support';
import { DEFAULT_KDF_CEILING } from '../../crypto/backup-copy';
import { kdfBombArchive } from '../support/kdf-bomb';

const manifestExtras: CreateArchiveOptions['manifestExtras'] = { schemaVersion: '001_initial', databaseEngine: 'sqlite', logChainHead: 'c0ffee' };

/** Small segments make many segments out of little data; the format allows any size from 256 B. */
const SMALL_SEGMENTS: ArchiveWriterInternals = { segmentSize: 1024 };

function sampleEntries(): Array<{ name: string; bytes: Buffer }> {
  return [
    { name: 'config/keyward.json', bytes: Buffer.from('{"storage":"softhsm"}\n') },
    { name: 'empty', bytes: Buffer.alloc(0) },
    { name: 'tls/server.pem', bytes: randomBytes(3000) },
    { name: 'log/transitions.jsonl', bytes: randomBytes(9000) },
  ];
}

const asEntries = (list: Array<{ name: string; bytes: Buffer }>): ArchiveEntry[] => list.map(({ name, bytes }) => ({ name, data: bytes }));

function flip(file: string, position: number, into: string): string {
  const bytes = readFileSync(file);
  bytes[position] = bytes[position]! ^ 0x5a;
  const out = join(testDir('flipped'), into);
  writeFileSync(out, bytes);
  return out;
}

function truncate(file: string, length: number): string {
  const out = join(testDir('truncated'), `cut-${length}.kwa`);
  writeFileSync(out, readFileSync(file).subarray(0, length));
  return out;
}

describe('the backup archive', () => {
  const passphrase = newSecret('archive-passphrase');
  const wrong = newSecret('wrong-passphrase');
  const secrets = [passphrase, wrong];
  const entries = sampleEntries();
  let small: string; // 1 KiB segments: header, ~14 segments, trailer
  let headerLength: number;

  beforeAll(async () => {
    small = join(testDir('archive-small'), 'small.kwa');
    await writeArchive(small, passphrase, asEntries(entries), { manifestExtras }, SMALL_SEGMENTS);
    headerLength = readFileSync(small).readUInt16BE(10);
  });

  it('round-trips entries: verify lists them with their hashes, extract gives the same bytes', async () => {
    const verified = await verifyArchive(small, passphrase);
    expect(verified.entries).toEqual(entries.map(({ name, bytes }) => ({ name, size: bytes.length, sha256: sha256(bytes), ok: true })));
    expect(verified.header).toMatchObject({ formatVersion: 1, writerVersion: KEYWARD_VERSION, kdf: { memoryKiB: 65536, iterations: 3, parallelism: 1 }, segmentSize: 1024 });
    expect(verified.manifest).toMatchObject({ format: 'keyward-backup-manifest', keywardVersion: KEYWARD_VERSION, schemaVersion: '001_initial', databaseEngine: 'sqlite', logChainHead: 'c0ffee' });
    expect(typeof verified.manifest.host.hostname).toBe('string');
    expect(Date.parse(verified.manifest.createdAt)).toBeGreaterThan(Date.now() - 60000);

    const dest = join(testDir('extract'), 'out');
    const extracted = await extractArchive(small, passphrase, dest);
    expect(extracted.destDir).toBe(dest);
    for (const { name, bytes } of entries) {
      expect(readFileSync(join(dest, ...name.split('/')))).toEqual(bytes);
      expect(statSync(join(dest, ...name.split('/'))).mode & 0o777).toBe(0o600);
    }
    expect(JSON.parse(readFileSync(join(dest, 'manifest.json'), 'utf8'))).toEqual(verified.manifest);
    expect(statSync(dest).mode & 0o777).toBe(0o700);
    expect(readdirSync(join(dest, '..'))).toEqual(['out']); // no staging directory left
  });

  it('is readable by an independent implementation of docs/backup-format.md', async () => {
    const read = await readPerDocs(readFileSync(small), passphrase);
    expect(read.writerVersion).toBe(KEYWARD_VERSION);
    expect([...read.entries.keys()]).toEqual([...entries.map((entry) => entry.name), 'manifest.json']);
    for (const { name, bytes } of entries) expect(read.entries.get(name)).toEqual(bytes);
  });

  it('is created with mode 0600, never over an existing file, and leaves no temporary file', async () => {
    const dir = testDir('archive-mode');
    const path = join(dir, 'a.kwa');
    await createArchive(path, passphrase, asEntries(entries), { manifestExtras });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['a.kwa']);

    const existing = join(dir, 'existing.kwa');
    writeFileSync(existing, 'precious');
    await expectArchiveError(createArchive(existing, passphrase, asEntries(entries), { manifestExtras }), 'OUTPUT_EXISTS', secrets);
    expect(readFileSync(existing, 'utf8')).toBe('precious');
    expect(readdirSync(dir).sort()).toEqual(['a.kwa', 'existing.kwa']);

    const taken = join(testDir('extract-exists'), 'dest');
    await extractArchive(small, passphrase, taken);
    await expectArchiveError(extractArchive(small, passphrase, taken), 'OUTPUT_EXISTS', secrets);
  });

  it('streams several megabytes through default 64 KiB segments, reporting progress', async () => {
    const dir = testDir('archive-large');
    const path = join(dir, 'large.kwa');
    const big = randomBytes(6 * 1024 * 1024 + 12345);
    let partialSeen = 0;
    // A generator that watches the temporary file grow while it is still producing data.
    async function* produce(): AsyncGenerator<Buffer> {
      for (let offset = 0; offset < big.length; offset += 100_000) {
        const partial = readdirSync(dir).find((name) => name.endsWith('.partial'));
        if (partial) partialSeen = Math.max(partialSeen, statSync(join(dir, partial)).size);
        yield big.subarray(offset, offset + 100_000);
      }
    }
    const progress: number[] = [];
    const created = await createArchive(
      path,
      passphrase,
      [
        { name: 'db/big.bin', data: produce() },
        { name: 'readable.bin', data: Readable.from([big.subarray(0, 70000), big.subarray(70000, 200000)]) },
      ],
      {
        manifestExtras,
        onProgress: ({ bytes }) => progress.push(bytes),
      },
    );
    expect(partialSeen).toBeGreaterThan(3 * 1024 * 1024); // written while produced, not at the end
    expect(progress.at(-1)).toBe(big.length + 200000);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(created.segments).toBeGreaterThan(90);

    const reads: number[] = [];
    const verified = await verifyArchive(path, passphrase, { onProgress: ({ bytes }) => reads.push(bytes) });
    expect(verified.entries).toEqual([
      { name: 'db/big.bin', size: big.length, sha256: sha256(big), ok: true },
      { name: 'readable.bin', size: 200000, sha256: sha256(big.subarray(0, 200000)), ok: true },
    ]);
    expect(reads.length).toBeGreaterThan(90);
    const dest = join(dir, 'out');
    await extractArchive(path, passphrase, dest);
    expect(readFileSync(join(dest, 'db', 'big.bin')).equals(big)).toBe(true);
  });

  it('reports a flipped byte in the magic, the version, or anywhere in the header', async () => {
    for (const position of [0, 3, 7]) await expectArchiveError(verifyArchive(flip(small, position, `magic-${position}.kwa`), passphrase), 'NOT_AN_ARCHIVE', secrets);
    for (const position of [8, 9]) await expectArchiveError(verifyArchive(flip(small, position, `version-${position}.kwa`), passphrase), 'ARCHIVE_VERSION_UNSUPPORTED', secrets);
    // Header length, KDF id and parameters, salt, nonce prefix, segment size, writer version, verifier, checksum.
    const positions = [10, 11, 12, 13, 15, 20, 22, 30, 40, 47, 51, headerLength - 20, headerLength - 9, headerLength - 1];
    const started = Date.now();
    for (const position of positions) {
      await expectArchiveError(verifyArchive(flip(small, position, `header-${position}.kwa`), passphrase), 'ARCHIVE_CORRUPT', secrets);
    }
    const allFlips = Date.now() - started;
    // Caught by the checksum before the key derivation: all of them together take less than one derivation.
    const derivation = Date.now();
    await expectArchiveError(verifyArchive(small, wrong), 'WRONG_PASSPHRASE', secrets);
    expect(allFlips).toBeLessThan(Date.now() - derivation);
  });

  it('reports a flipped byte in the first, a middle or the last segment, or the end marker, as corruption', async () => {
    const size = statSync(small).size;
    const stored = 1024 + 16;
    const positions = [
      headerLength, // first segment, first byte
      headerLength + 500,
      headerLength + stored - 1, // first segment's tag
      headerLength + 6 * stored + 77, // a middle segment
      size - 16 - 1, // last segment's tag
      size - 16 - 30, // last segment's ciphertext
      size - 16, // end marker
      size - 1, // the length in the end marker
    ];
    for (const position of positions) {
      const error = await expectArchiveError(verifyArchive(flip(small, position, `payload-${position}.kwa`), passphrase), 'ARCHIVE_CORRUPT', secrets);
      expect(error.message).toMatch(/damaged/);
    }
    // Nothing is left behind by a failed extraction.
    const parent = testDir('extract-corrupt');
    await expectArchiveError(extractArchive(flip(small, size - 40, 'late.kwa'), passphrase, join(parent, 'dest')), 'ARCHIVE_CORRUPT', secrets);
    expect(readdirSync(parent)).toEqual([]);
  });

  it('tells a wrong passphrase from damage, after one key derivation and before reading the payload', async () => {
    const started = Date.now();
    const error = await expectArchiveError(verifyArchive(small, wrong), 'WRONG_PASSPHRASE', secrets);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(error.message).toBe('the backup passphrase is wrong for this archive');
    // With a damaged payload, a wrong passphrase is still a wrong passphrase.
    await expectArchiveError(verifyArchive(flip(small, headerLength + 2000, 'wrong-and-damaged.kwa'), wrong), 'WRONG_PASSPHRASE', secrets);
    const parent = testDir('extract-wrong');
    await expectArchiveError(extractArchive(small, wrong, join(parent, 'dest')), 'WRONG_PASSPHRASE', secrets);
    expect(readdirSync(parent)).toEqual([]);
  });

  it('reports a file cut short at any length as truncated', async () => {
    const size = statSync(small).size;
    const stored = 1024 + 16;
    const lengths = [0, 5, 11, 40, headerLength - 1, headerLength, headerLength + 10, headerLength + stored, headerLength + 3 * stored + 100, size - 16 - 1, size - 16, size - 15, size - 1];
    for (const length of lengths) {
      const error = await expectArchiveError(verifyArchive(truncate(small, length), passphrase), 'ARCHIVE_TRUNCATED', secrets);
      expect(error.message).toMatch(/truncated/);
    }
  });

  it('reports reordered, duplicated or dropped segments, and a stream cut at a segment boundary', async () => {
    const bytes = readFileSync(small);
    const stored = 1024 + 16;
    const segment = (i: number) => bytes.subarray(headerLength + i * stored, headerLength + (i + 1) * stored);
    const head = bytes.subarray(0, headerLength);
    const tail = (from: number) => bytes.subarray(headerLength + from * stored);
    const write = (name: string, parts: Buffer[], fixTrailer: boolean) => {
      const out = Buffer.concat(parts);
      if (fixTrailer) out.writeBigUInt64BE(BigInt(out.length), out.length - 8);
      const path = join(testDir('segments'), name);
      writeFileSync(path, out);
      return path;
    };
    const swapped = write('swapped.kwa', [head, segment(0), segment(2), segment(1), tail(3)], false);
    await expectArchiveError(verifyArchive(swapped, passphrase), 'ARCHIVE_SEGMENTS_REORDERED', secrets);
    const duplicated = write('duplicated.kwa', [head, segment(0), segment(1), segment(1), segment(2), tail(3)], true);
    await expectArchiveError(verifyArchive(duplicated, passphrase), 'ARCHIVE_SEGMENTS_REORDERED', secrets);
    const dropped = write('dropped.kwa', [head, segment(0), segment(1), tail(3)], true);
    await expectArchiveError(verifyArchive(dropped, passphrase), 'ARCHIVE_SEGMENTS_REORDERED', secrets);
    const droppedKeepTrailer = write('dropped-stale-trailer.kwa', [head, segment(0), tail(2)], false);
    await expectArchiveError(verifyArchive(droppedKeepTrailer, passphrase), 'ARCHIVE_SEGMENTS_REORDERED', secrets);
    // The final segment removed and a matching end marker added: STREAM's last-segment flag catches it.
    const count = Math.ceil((bytes.length - 16 - headerLength) / stored);
    const trailer = Buffer.from(bytes.subarray(bytes.length - 16));
    const cut = write('cut-at-boundary.kwa', [bytes.subarray(0, headerLength + (count - 1) * stored), trailer], true);
    const error = await expectArchiveError(verifyArchive(cut, passphrase), 'ARCHIVE_TRUNCATED', secrets);
    expect(error.message).toMatch(/not the final segment/);
  });

  it('reports entries that disagree with the manifest', async () => {
    const dir = testDir('manifest-lies');
    const lie = async (name: string, rewrite: NonNullable<ArchiveWriterInternals['rewriteManifest']>) => {
      const path = join(dir, name);
      await writeArchive(path, passphrase, asEntries(entries), { manifestExtras }, { ...SMALL_SEGMENTS, rewriteManifest: rewrite });
      return path;
    };
    const hash = await lie('hash.kwa', (m) => ({ ...m, entries: m.entries.map((e) => (e.name === 'tls/server.pem' ? { ...e, sha256: sha256(Buffer.from('other')) } : e)) }));
    const error = await expectArchiveError(verifyArchive(hash, passphrase), 'MANIFEST_MISMATCH', secrets);
    expect(error.message).toContain('tls/server.pem');
    expect(error.entries?.filter((e) => !e.ok).map((e) => e.name)).toEqual(['tls/server.pem']);
    const size = await lie('size.kwa', (m) => ({ ...m, entries: m.entries.map((e) => (e.name === 'empty' ? { ...e, size: 1 } : e)) }));
    await expectArchiveError(verifyArchive(size, passphrase), 'MANIFEST_MISMATCH', secrets);
    const missing = await lie('missing.kwa', (m) => ({ ...m, entries: [...m.entries, { name: 'ghost', size: 1, sha256: sha256(Buffer.from('x')) }] }));
    const missingError = await expectArchiveError(verifyArchive(missing, passphrase), 'MANIFEST_MISMATCH', secrets);
    expect(missingError.message).toMatch(/ghost \(in the manifest, missing from the archive\)/);
    const extra = await lie('extra.kwa', (m) => ({ ...m, entries: m.entries.filter((e) => e.name !== 'config/keyward.json') }));
    await expectArchiveError(verifyArchive(extra, passphrase), 'MANIFEST_MISMATCH', secrets);
    // A mismatching archive is not extracted.
    await expectArchiveError(extractArchive(hash, passphrase, join(dir, 'dest')), 'MANIFEST_MISMATCH', secrets);
    expect(readdirSync(dir).sort()).toEqual(['extra.kwa', 'hash.kwa', 'missing.kwa', 'size.kwa']);
  });

  it('never writes the passphrase into the archive', async () => {
    for (const path of [small]) {
      const bytes = readFileSync(path);
      expect(bytes.includes(Buffer.from(passphrase, 'utf8'))).toBe(false);
      expect(bytes.includes(Buffer.from(passphrase, 'utf16le'))).toBe(false);
    }
  });

  it('refuses weak Argon2id parameters when writing and when reading', async () => {
    const dir = testDir('weak-kdf');
    await expectArchiveError(createArchive(join(dir, 'weak.kwa'), passphrase, [], { manifestExtras, kdf: { memoryKiB: 32768, iterations: 3, parallelism: 1 } }), 'WEAK_KDF_PARAMETERS', secrets);
    await expectArchiveError(createArchive(join(dir, 'weak2.kwa'), passphrase, [], { manifestExtras, kdf: { memoryKiB: 65536, iterations: 2, parallelism: 1 } }), 'WEAK_KDF_PARAMETERS', secrets);
    expect(readdirSync(dir)).toEqual([]);
    // An archive whose header was rewritten with m = 8 MiB (and a fixed checksum) is not derived from.
    const bytes = readFileSync(small);
    bytes.writeUInt32BE(8192, 14);
    createHash('sha256')
      .update(bytes.subarray(0, headerLength - 8))
      .digest()
      .copy(bytes, headerLength - 8, 0, 8);
    const lowered = join(dir, 'lowered.kwa');
    writeFileSync(lowered, bytes);
    await expectArchiveError(verifyArchive(lowered, passphrase), 'WEAK_KDF_PARAMETERS', secrets);
  });

  it('refuses parameters above the reader’s ceiling from the header, before deriving anything', async () => {
    const bomb = kdfBombArchive();
    const started = Date.now();
    const error = await expectArchiveError(verifyArchive(bomb, passphrase), 'WEAK_KDF_PARAMETERS', secrets);
    await expectArchiveError(extractArchive(bomb, passphrase, join(testDir('bomb-extract'), 'dest')), 'WEAK_KDF_PARAMETERS', secrets);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(error.message).toContain(`m ≤ ${DEFAULT_KDF_CEILING.memoryKiB} KiB`);
    expect(existsSync(join(testDir('bomb-extract'), 'dest'))).toBe(false);

    // One pass over four times the default: a real archive keyward did not write with its defaults.
    const path = join(testDir('above-ceiling'), 'strong.kwa');
    const strong = { memoryKiB: 65536, iterations: DEFAULT_KDF_CEILING.iterations + 1, parallelism: 1 };
    await createArchive(path, passphrase, asEntries(entries.slice(0, 1)), { manifestExtras, kdf: strong });
    await expectArchiveError(verifyArchive(path, passphrase), 'WEAK_KDF_PARAMETERS', secrets);
    // Raised by the reading side's configuration, it reads.
    const raised = { ...DEFAULT_KDF_CEILING, iterations: strong.iterations };
    expect((await verifyArchive(path, passphrase, { kdfCeiling: raised })).header.kdf).toEqual(strong);
  });

  it('records stronger parameters in the header so they can be raised later', async () => {
    const path = join(testDir('strong-kdf'), 'strong.kwa');
    await createArchive(path, passphrase, asEntries(entries.slice(0, 1)), { manifestExtras, kdf: { memoryKiB: 65536, iterations: 4, parallelism: 2 } });
    expect((await verifyArchive(path, passphrase)).header.kdf).toEqual({ memoryKiB: 65536, iterations: 4, parallelism: 2 });
  });

  it('says a newer container format is newer', async () => {
    const bytes = readFileSync(small);
    bytes.writeUInt16BE(2, 8);
    const path = join(testDir('newer'), 'v2.kwa');
    writeFileSync(path, bytes);
    const error = await expectArchiveError(verifyArchive(path, passphrase), 'ARCHIVE_VERSION_UNSUPPORTED', secrets);
    expect(error.message).toMatch(/newer/);
  });

  it('refuses unsafe or duplicate entry names, and removes its partial file when the input fails', async () => {
    const dir = testDir('bad-names');
    for (const name of ['../escape', '/absolute', 'a//b', 'a/./b', 'back\\slash', '', 'nul\u0000byte']) {
      // toThrow takes an asymmetric matcher too, though @types/jest does not say so.
      expect(() => checkEntryName(name)).toThrow(expect.objectContaining({ code: 'INVALID_ENTRY_NAME' }) as Error);
    }
    await expectArchiveError(createArchive(join(dir, 'x.kwa'), passphrase, [{ name: '../escape', data: Buffer.from('x') }], { manifestExtras }), 'INVALID_ENTRY_NAME', secrets);
    await expectArchiveError(createArchive(join(dir, 'x.kwa'), passphrase, [{ name: 'manifest.json', data: Buffer.from('x') }], { manifestExtras }), 'INVALID_ENTRY_NAME', secrets);
    await expectArchiveError(
      createArchive(
        join(dir, 'x.kwa'),
        passphrase,
        [
          { name: 'a', data: Buffer.alloc(1) },
          { name: 'a', data: Buffer.alloc(1) },
        ],
        { manifestExtras },
      ),
      'INVALID_ENTRY_NAME',
    );
    await expectArchiveError(
      createArchive(
        join(dir, 'x.kwa'),
        passphrase,
        [
          { name: 'a', data: Buffer.alloc(1) },
          { name: 'a/b', data: Buffer.alloc(1) },
        ],
        { manifestExtras },
      ),
      'INVALID_ENTRY_NAME',
    );
    async function* failing(): AsyncGenerator<Buffer> {
      yield randomBytes(300000);
      throw new Error('the source went away');
    }
    await expect(createArchive(join(dir, 'x.kwa'), passphrase, [{ name: 'a', data: failing() }], { manifestExtras })).rejects.toThrow('the source went away');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('an interrupted write leaves only a temporary file, which verify reports as truncated', async () => {
    // What a crash leaves: the hidden .partial file, a prefix of an archive without its end marker.
    const dir = testDir('crash');
    const partial = join(dir, '.backup.kwa.0123456789ab.partial');
    copyFileSync(small, partial);
    writeFileSync(partial, readFileSync(small).subarray(0, headerLength + 5000));
    expect(existsSync(join(dir, 'backup.kwa'))).toBe(false);
    await expectArchiveError(verifyArchive(partial, passphrase), 'ARCHIVE_TRUNCATED', secrets);
  });
});

describe('archive versions against the running keyward', () => {
  const running = { keywardVersion: '1.4.2', schemaVersion: '003_devices' };

  it('says newer, same or older for the keyward version and the schema', () => {
    expect(compareArchiveVersions({ keywardVersion: '1.4.2', schemaVersion: '003_devices' }, running)).toEqual({ keyward: 'same', schema: 'same', overall: 'same' });
    expect(compareArchiveVersions({ keywardVersion: '1.10.0', schemaVersion: '003_devices' }, running).overall).toBe('newer');
    expect(compareArchiveVersions({ keywardVersion: '1.4.2', schemaVersion: '004_more' }, running)).toEqual({ keyward: 'same', schema: 'newer', overall: 'newer' });
    expect(compareArchiveVersions({ keywardVersion: '1.4.1', schemaVersion: '002_x' }, running)).toEqual({ keyward: 'older', schema: 'older', overall: 'older' });
    expect(compareArchiveVersions({ keywardVersion: '1.4.2-rc.1', schemaVersion: '003_devices' }, running).keyward).toBe('older');
    expect(compareArchiveVersions({ keywardVersion: '0.9.0', schemaVersion: '004_more' }, running).overall).toBe('newer');
    expect(compareArchiveVersions({ keywardVersion: '1.4.2', schemaVersion: null }, running).schema).toBe('older');
  });
});
