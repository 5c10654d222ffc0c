import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, open, readFile, readdir, readlink, rename, rm, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCertificates } from './certificate';
import { TlsFilesError, TlsInputError } from './errors';
import { keyMatches, parsePrivateKey } from './private-key';
import { TlsMaterial, assembleMaterial } from './tls-material';

/*
 * On-disk layout of a TLS directory, and why.
 *
 *   DIR/                        0700 when keyward creates it
 *     .tls-<fp>-<rand>/         0700  one generation: written completely, fsynced, never changed again
 *       server.key              0600
 *       server.crt chain.crt fullchain.crt   0644
 *     current -> .tls-<fp>-<rand>           the one atomic switch
 *     server.key -> current/server.key      fixed names for servers' configuration
 *     server.crt, chain.crt, fullchain.crt  likewise
 *
 * Four files cannot be replaced together by renaming each one: whatever the order, there is a moment
 * when one name holds the new credential and another the old, and a server reloading then loads a
 * key with the wrong certificate. Writing the key last, or renaming it first, only moves that moment.
 * So a new credential goes into a fresh generation directory (each file through a temp file, fsync,
 * rename, then the directory fsynced), and one rename(2) of the `current` symlink switches all four
 * names at once. Then the old generation is deleted: an old private key is not left on disk.
 *
 * What this guarantees a reader: everything read through one resolution of `current` is one
 * credential. readTlsFiles resolves it once; a reader that opens DIR/server.key and DIR/server.crt
 * separately resolves it twice, and a switch between its two opens can still pair them wrongly (no
 * layout prevents that); such a reader should check the pair (Node's createSecureContext does) and
 * retry, or read through realpath(DIR/current).
 *
 * One writer at a time: the lifecycle machine runs one effect at a time.
 */

export const KEY_FILE = 'server.key';
export const CERTIFICATE_FILE = 'server.crt';
export const CHAIN_FILE = 'chain.crt';
export const FULLCHAIN_FILE = 'fullchain.crt';
export const CURRENT_LINK = 'current';

const FILES = [CERTIFICATE_FILE, CHAIN_FILE, FULLCHAIN_FILE, KEY_FILE] as const;
const GENERATION = /^\.tls-[0-9a-f]{8}-[0-9a-f]{16}$/;
const TEMP = /^\..+\.tmp-[0-9a-f]{16}$/;

export interface TlsFilePaths {
  keyFile: string;
  certificateFile: string;
  chainFile: string;
  fullchainFile: string;
}

function paths(dir: string): TlsFilePaths {
  return {
    keyFile: join(dir, KEY_FILE),
    certificateFile: join(dir, CERTIFICATE_FILE),
    chainFile: join(dir, CHAIN_FILE),
    fullchainFile: join(dir, FULLCHAIN_FILE),
  };
}

function tempName(name: string): string {
  return `.${name}.tmp-${randomBytes(8).toString('hex')}`;
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Temp file in the same directory, fsync, rename: the name never shows a partial file. */
async function writeFileAtomic(dir: string, name: string, content: string, mode: number): Promise<void> {
  const temp = join(dir, tempName(name));
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(content, 'utf8');
    // The mode given to open is filtered by the umask; the key must be exactly 0600.
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, join(dir, name));
}

/** Points `name` at `target` with one rename, whatever was there before. */
async function replaceSymlink(dir: string, name: string, target: string): Promise<void> {
  const temp = join(dir, tempName(name));
  await symlink(target, temp);
  await rename(temp, join(dir, name));
}

/** The generation `current` points at, or null when there is no `current`. */
async function liveGeneration(dir: string): Promise<string | null> {
  let target: string;
  try {
    target = await readlink(join(dir, CURRENT_LINK));
  } catch (error) {
    if (isMissing(error)) return null;
    if ((error as NodeJS.ErrnoException).code === 'EINVAL') throw new TlsFilesError(CURRENT_LINK, `${join(dir, CURRENT_LINK)} is not a symbolic link`);
    throw error;
  }
  if (!GENERATION.test(target)) throw new TlsFilesError(CURRENT_LINK, `${join(dir, CURRENT_LINK)} points at ${target}, not at a keyward generation directory`);
  return target;
}

function fileContents(material: TlsMaterial): Record<(typeof FILES)[number], string> {
  const chain = material.chainPem ?? '';
  return {
    [KEY_FILE]: material.privateKeyPem,
    [CERTIFICATE_FILE]: material.certificatePem,
    [CHAIN_FILE]: chain,
    [FULLCHAIN_FILE]: material.certificatePem + chain,
  };
}

/** The material in canonical form, after checking that its parts belong together. */
function canonicalMaterial(material: TlsMaterial): TlsMaterial {
  const key = parsePrivateKey(material.privateKeyPem, 'privateKeyPem');
  const [leaf] = parseCertificates(material.certificatePem, 'certificatePem');
  if (!leaf) throw new TlsInputError('certificatePem', 'no PEM certificate found');
  const chain = material.chainPem ? parseCertificates(material.chainPem, 'chainPem') : [];
  if (!keyMatches(leaf, key)) throw new TlsInputError('privateKeyPem', 'the private key does not belong to the certificate');
  const canonical = assembleMaterial(key, leaf, chain, 'certificatePem');
  if (canonical.fingerprintSha256 !== material.fingerprintSha256.toUpperCase()) {
    throw new TlsInputError('fingerprintSha256', 'the fingerprint does not match the certificate');
  }
  return canonical;
}

async function generationHolds(dir: string, generation: string, contents: Record<string, string>): Promise<boolean> {
  try {
    for (const [name, content] of Object.entries(contents)) {
      if ((await readFile(join(dir, generation, name), 'utf8')) !== content) return false;
    }
    return ((await stat(join(dir, generation, KEY_FILE))).mode & 0o777) === 0o600;
  } catch (error) {
    if (isMissing(error)) return false;
    throw error;
  }
}

async function ensureDirectory(dir: string): Promise<void> {
  const created = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (created !== undefined) await chmod(dir, 0o700);
  if (!(await stat(dir)).isDirectory()) throw new TlsFilesError(dir, `${dir} is not a directory`);
}

async function linkFixedNames(dir: string): Promise<void> {
  for (const name of FILES) {
    const target = `${CURRENT_LINK}/${name}`;
    const existing = await readlink(join(dir, name)).catch(() => null);
    if (existing !== target) await replaceSymlink(dir, name, target);
  }
}

/** Deletes every generation but `keep`, and temp files a crashed run left. */
async function removeLeftovers(dir: string, keep: string): Promise<void> {
  for (const entry of await readdir(dir)) {
    if ((GENERATION.test(entry) && entry !== keep) || TEMP.test(entry)) await rm(join(dir, entry), { recursive: true, force: true });
  }
}

/**
 * Writes the credential as server.key (0600), server.crt, chain.crt (empty without a chain) and
 * fullchain.crt, switching all four at once (see the layout above). Writing the credential that is
 * already there changes nothing on disk.
 */
export async function writeTlsFiles(dir: string, material: TlsMaterial): Promise<TlsFilePaths> {
  const contents = fileContents(canonicalMaterial(material));
  await ensureDirectory(dir);
  const live = await liveGeneration(dir);
  let generation: string;
  if (live !== null && (await generationHolds(dir, live, contents))) {
    generation = live;
  } else {
    generation = `.tls-${material.fingerprintSha256.replace(/:/g, '').slice(0, 8).toLowerCase()}-${randomBytes(8).toString('hex')}`;
    const generationDir = join(dir, generation);
    await mkdir(generationDir, { mode: 0o700 });
    await chmod(generationDir, 0o700);
    for (const name of FILES) await writeFileAtomic(generationDir, name, contents[name], name === KEY_FILE ? 0o600 : 0o644);
    await fsyncPath(generationDir);
    await replaceSymlink(dir, CURRENT_LINK, generation);
  }
  // Also repairs fixed names that were missing or were plain files of an older layout.
  await linkFixedNames(dir);
  await fsyncPath(dir);
  await removeLeftovers(dir, generation);
  return paths(dir);
}

/** A file's text, null if there is no such name; a dangling link or unreadable file is an error. */
async function readOptional(path: string, name: string): Promise<string | null> {
  try {
    await lstat(path);
  } catch (error) {
    if (isMissing(error)) return null;
    throw error;
  }
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new TlsFilesError(name, `${path} exists but cannot be read${isMissing(error) ? ' (a dangling link?)' : ''}`, { cause: error });
  }
}

async function readMaterial(base: string): Promise<TlsMaterial | null> {
  const keyText = await readOptional(join(base, KEY_FILE), KEY_FILE);
  const certificateText = await readOptional(join(base, CERTIFICATE_FILE), CERTIFICATE_FILE);
  if (keyText === null && certificateText === null) return null;
  if (keyText === null) throw new TlsFilesError(KEY_FILE, `${base} holds ${CERTIFICATE_FILE} but no ${KEY_FILE}`);
  if (certificateText === null) throw new TlsFilesError(CERTIFICATE_FILE, `${base} holds ${KEY_FILE} but no ${CERTIFICATE_FILE}`);
  const chainText = (await readOptional(join(base, CHAIN_FILE), CHAIN_FILE)) ?? '';
  try {
    const key = parsePrivateKey(keyText, KEY_FILE);
    const [leaf] = parseCertificates(certificateText, CERTIFICATE_FILE);
    if (!leaf) throw new TlsFilesError(CERTIFICATE_FILE, `${join(base, CERTIFICATE_FILE)} holds no PEM certificate`);
    if (!keyMatches(leaf, key)) throw new TlsFilesError(KEY_FILE, `${join(base, KEY_FILE)} does not belong to ${join(base, CERTIFICATE_FILE)}`);
    return assembleMaterial(key, leaf, parseCertificates(chainText, CHAIN_FILE), CERTIFICATE_FILE);
  } catch (error) {
    if (error instanceof TlsInputError) throw new TlsFilesError(error.field, `${join(base, error.field)}: ${error.message}`, { cause: error });
    throw error;
  }
}

/**
 * The credential in a TLS directory, null when there is none. Reads one generation throughout, so
 * a concurrent writeTlsFiles is seen entirely or not at all. A directory of plain files (written by
 * hand or by an older layout) is read as it is.
 */
export async function readTlsFiles(dir: string): Promise<TlsMaterial | null> {
  for (let attempt = 0; ; attempt += 1) {
    const live = await liveGeneration(dir);
    if (live === null) return readMaterial(dir);
    try {
      const material = await readMaterial(join(dir, live));
      if (material === null) throw new TlsFilesError(CURRENT_LINK, `${join(dir, CURRENT_LINK)} points at an empty generation ${live}`);
      return material;
    } catch (error) {
      // The writer deleted this generation after switching to a newer one: read that one.
      if (attempt < 3 && (await liveGeneration(dir)) !== live) continue;
      throw error;
    }
  }
}
