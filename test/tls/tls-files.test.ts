import { createSecureContext } from 'node:tls';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TlsFilesError, TlsInputError, TlsMaterial, generateTlsCredential, importPemFiles, readTlsFiles, writeTlsFiles } from '../../tls';
import { testDir } from '../support/run-dir';
import { ecKey, issueLeaf, makeCa } from './openssl-cli';

const NAMES = ['chain.crt', 'fullchain.crt', 'server.crt', 'server.key'];

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

function generationOf(dir: string): string {
  return readlinkSync(join(dir, 'current'));
}

describe('writeTlsFiles and readTlsFiles', () => {
  let a: TlsMaterial;
  let b: TlsMaterial;
  let chained: TlsMaterial;

  beforeAll(async () => {
    a = await generateTlsCredential({ subjectAltNames: ['a.example'] });
    b = await generateTlsCredential({ subjectAltNames: ['b.example'] });
    const fixtures = testDir('tls-files-fixtures');
    const ca = makeCa(fixtures, 'root');
    const key = ecKey(fixtures, 'leaf.key');
    chained = await importPemFiles({ keyFile: key, certificateFile: issueLeaf(fixtures, 'leaf', key, ca), chainFile: ca.certificate });
  });

  it('creates the directory 0700 and writes the key 0600, the certificates beside it', async () => {
    const dir = join(testDir('tls-files'), 'nested', 'tls');
    const paths = await writeTlsFiles(dir, chained);
    expect(paths).toEqual({
      keyFile: join(dir, 'server.key'),
      certificateFile: join(dir, 'server.crt'),
      chainFile: join(dir, 'chain.crt'),
      fullchainFile: join(dir, 'fullchain.crt'),
    });
    expect(mode(dir)).toBe(0o700);
    expect(mode(join(dir, generationOf(dir)))).toBe(0o700);
    expect(mode(paths.keyFile)).toBe(0o600);
    expect(mode(paths.certificateFile)).toBe(0o644);
    expect(readFileSync(paths.keyFile, 'utf8')).toBe(chained.privateKeyPem);
    expect(readFileSync(paths.certificateFile, 'utf8')).toBe(chained.certificatePem);
    expect(readFileSync(paths.chainFile, 'utf8')).toBe(chained.chainPem);
    expect(readFileSync(paths.fullchainFile, 'utf8')).toBe(chained.certificatePem + chained.chainPem);
    // What a server does with them.
    createSecureContext({ key: readFileSync(paths.keyFile), cert: readFileSync(paths.fullchainFile) });
  });

  it('writes an empty chain.crt when there is no chain', async () => {
    const dir = testDir('tls-files');
    const paths = await writeTlsFiles(dir, a);
    expect(readFileSync(paths.chainFile, 'utf8')).toBe('');
    expect(readFileSync(paths.fullchainFile, 'utf8')).toBe(a.certificatePem);
  });

  it('round-trips through readTlsFiles, with and without a chain', async () => {
    for (const material of [a, chained]) {
      const dir = testDir('tls-files');
      await writeTlsFiles(dir, material);
      expect(await readTlsFiles(dir)).toEqual(material);
    }
  });

  it('leaves only the four names, `current` and one generation: no temp file', async () => {
    const dir = testDir('tls-files');
    await writeTlsFiles(dir, chained);
    const generation = generationOf(dir);
    expect(generation).toMatch(/^\.tls-[0-9a-f]{8}-[0-9a-f]{16}$/);
    expect(readdirSync(dir).sort()).toEqual([generation, ...NAMES.slice(0, 2), 'current', ...NAMES.slice(2)].sort());
    expect(readdirSync(join(dir, generation)).sort()).toEqual(NAMES);
    for (const name of NAMES) expect(readlinkSync(join(dir, name))).toBe(`current/${name}`);
  });

  it('is harmless to run twice: the second run changes nothing on disk', async () => {
    const dir = testDir('tls-files');
    await writeTlsFiles(dir, a);
    const generation = generationOf(dir);
    const before = readdirSync(dir).sort();
    const inode = statSync(join(dir, 'server.key')).ino;
    await writeTlsFiles(dir, { ...a });
    expect(generationOf(dir)).toBe(generation);
    expect(readdirSync(dir).sort()).toEqual(before);
    expect(statSync(join(dir, 'server.key')).ino).toBe(inode);
    expect(await readTlsFiles(dir)).toEqual(a);
  });

  it('switches to a new credential at once and deletes the old key', async () => {
    const dir = testDir('tls-files');
    await writeTlsFiles(dir, a);
    const old = generationOf(dir);
    await writeTlsFiles(dir, b);
    expect(generationOf(dir)).not.toBe(old);
    expect(existsSync(join(dir, old))).toBe(false);
    expect(readdirSync(dir).filter((entry) => entry.startsWith('.'))).toEqual([generationOf(dir)]);
    expect(readFileSync(join(dir, 'server.key'), 'utf8')).toBe(b.privateKeyPem);
    expect(await readTlsFiles(dir)).toEqual(b);
  });

  it('never lets a reader see the key of one credential with the certificate of another', async () => {
    const dir = testDir('tls-files');
    await writeTlsFiles(dir, a);
    let writing = true;
    const writer = (async () => {
      for (let i = 0; i < 30; i += 1) await writeTlsFiles(dir, i % 2 === 0 ? b : a);
      writing = false;
    })();
    const seen = new Set<string>();
    let reads = 0;
    while (writing) {
      const material = await readTlsFiles(dir);
      seen.add(material!.fingerprintSha256);
      expect([a.fingerprintSha256, b.fingerprintSha256]).toContain(material!.fingerprintSha256);
      expect(material!.privateKeyPem).toBe(material!.fingerprintSha256 === a.fingerprintSha256 ? a.privateKeyPem : b.privateKeyPem);
      // A reader of its own that resolves `current` once gets one credential too.
      try {
        const generation = realpathSync(join(dir, 'current'));
        const [key, certificate] = await Promise.all([readFile(join(generation, 'server.key'), 'utf8'), readFile(join(generation, 'server.crt'), 'utf8')]);
        expect([a.privateKeyPem + a.certificatePem, b.privateKeyPem + b.certificatePem]).toContain(key + certificate);
      } catch (error) {
        // The generation it resolved was deleted by the next switch: it sees nothing, never a mix.
        expect((error as NodeJS.ErrnoException).code).toBe('ENOENT');
      }
      reads += 1;
    }
    await writer;
    expect(reads).toBeGreaterThan(5);
    expect(seen.size).toBe(2);
  });

  it('removes what a crashed run left: an unfinished generation, temp links', async () => {
    const dir = testDir('tls-files');
    await writeTlsFiles(dir, a);
    const stale = join(dir, '.tls-00000000-0123456789abcdef');
    mkdirSync(stale);
    writeFileSync(join(stale, '.server.key.tmp-0123456789abcdef'), b.privateKeyPem);
    symlinkSync(stale, join(dir, '.current.tmp-0123456789abcdef'));
    await writeTlsFiles(dir, a);
    expect(readdirSync(dir).filter((entry) => entry.startsWith('.'))).toEqual([generationOf(dir)]);
  });

  it("takes over a directory of plain files from an older layout, and leaves an existing directory's mode alone", async () => {
    const dir = testDir('tls-files');
    writeFileSync(join(dir, 'server.key'), a.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'server.crt'), a.certificatePem);
    expect(await readTlsFiles(dir)).toEqual(a);
    const before = mode(dir);
    await writeTlsFiles(dir, b);
    expect(mode(dir)).toBe(before);
    for (const name of NAMES) expect(lstatSync(join(dir, name)).isSymbolicLink()).toBe(true);
    expect(await readTlsFiles(dir)).toEqual(b);
  });

  it('writes a stored credential, which has no notBefore', async () => {
    const dir = testDir('tls-files');
    const { notBefore, ...stored } = chained;
    await writeTlsFiles(dir, stored);
    expect(await readTlsFiles(dir)).toEqual({ ...stored, notBefore });
  });

  it('refuses material whose parts do not belong together, and writes nothing', async () => {
    const dir = join(testDir('tls-files'), 'tls');
    const mixed = await writeTlsFiles(dir, { ...a, certificatePem: b.certificatePem, fingerprintSha256: b.fingerprintSha256 }).catch((e: unknown) => e);
    expect(mixed).toBeInstanceOf(TlsInputError);
    expect(mixed).toMatchObject({ field: 'privateKeyPem' });
    const wrongFingerprint = await writeTlsFiles(dir, { ...a, fingerprintSha256: b.fingerprintSha256 }).catch((e: unknown) => e);
    expect(wrongFingerprint).toMatchObject({ field: 'fingerprintSha256' });
    expect(existsSync(dir)).toBe(false);
  });

  it('reads null where there is no credential', async () => {
    const dir = testDir('tls-files');
    expect(await readTlsFiles(join(dir, 'absent'))).toBeNull();
    expect(await readTlsFiles(dir)).toBeNull();
    writeFileSync(join(dir, 'unrelated.txt'), 'x');
    expect(await readTlsFiles(dir)).toBeNull();
  });

  it('reports a directory whose files do not belong together', async () => {
    const mismatched = testDir('tls-files');
    writeFileSync(join(mismatched, 'server.key'), a.privateKeyPem);
    writeFileSync(join(mismatched, 'server.crt'), b.certificatePem);
    await expect(readTlsFiles(mismatched)).rejects.toThrow(TlsFilesError);
    await expect(readTlsFiles(mismatched)).rejects.toThrow(/server\.key does not belong to .*server\.crt/);

    const keyOnly = testDir('tls-files');
    writeFileSync(join(keyOnly, 'server.key'), a.privateKeyPem);
    await expect(readTlsFiles(keyOnly)).rejects.toThrow(/holds server\.key but no server\.crt/);

    const garbage = testDir('tls-files');
    await writeTlsFiles(garbage, a);
    writeFileSync(join(garbage, generationOf(garbage), 'server.key'), 'not a key');
    await expect(readTlsFiles(garbage)).rejects.toMatchObject({ name: 'TlsFilesError', file: 'server.key' });

    const elsewhere = testDir('tls-files');
    symlinkSync('/etc', join(elsewhere, 'current'));
    await expect(readTlsFiles(elsewhere)).rejects.toThrow(/not at a keyward generation directory/);
  });
});
