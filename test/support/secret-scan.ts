import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface ScanResult {
  files: number;
  bytes: number;
  secrets: number;
  leaks: Array<{ file: string; secretKind: string }>;
}

function walk(dir: string, out: string[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, out);
    else if (entry.isFile()) out.push(path);
  }
}

/**
 * Greps every file under the given roots (databases, WAL files, logs, snapshots, tokens) for every
 * secret registered by the suite, except the files that hold a secret on purpose.
 */
export function scanForSecrets(runRoot: string, extraRoots: string[] = []): ScanResult {
  const registry = join(runRoot, '.secrets');
  const secrets = new Set<string>();
  const sources = new Set<string>();
  /** Per secret, the files that show it on purpose. */
  const shown = new Map<string, Set<string>>();
  if (existsSync(registry)) {
    for (const name of readdirSync(registry)) {
      const lines = readFileSync(join(registry, name), 'utf8').split('\n').filter(Boolean);
      if (name.endsWith('.shown')) {
        for (const line of lines) {
          const [path, secret] = line.split('\t') as [string, string];
          shown.set(secret, (shown.get(secret) ?? new Set()).add(path));
        }
        continue;
      }
      for (const line of lines) (name.endsWith('.sources') ? sources : secrets).add(line);
    }
  }
  const files: string[] = [];
  for (const root of [runRoot, ...extraRoots]) if (existsSync(root)) walk(root, files);
  const result: ScanResult = { files: 0, bytes: 0, secrets: secrets.size, leaks: [] };
  const needles = new NeedleIndex([...secrets]);
  for (const file of files) {
    if (file.startsWith(registry) || sources.has(file)) continue;
    if (statSync(file).size > 256 * 1024 * 1024) continue;
    const content = readFileSync(file);
    result.files += 1;
    result.bytes += content.length;
    for (const secret of needles.findIn(content)) {
      if (shown.get(secret)?.has(file)) continue;
      result.leaks.push({ file, secretKind: secret.split('-')[0]! });
    }
  }
  return result;
}

const WINDOW = 8; // every registered secret has at least 8 characters (secrets.ts)
const BASE = 257;
const POW = Array.from({ length: WINDOW - 1 }).reduce<number>((power) => Math.imul(power, BASE), 1);

function windowHash(bytes: Buffer, start: number): number {
  let hash = 0;
  for (let k = 0; k < WINDOW; k++) hash = (Math.imul(hash, BASE) + bytes[start + k]!) | 0;
  return hash;
}

/**
 * Every secret found in one pass over a file (Rabin–Karp on each secret's first 8 bytes), instead of
 * one search per secret: the suite registers thousands of secrets over hundreds of MiB.
 */
class NeedleIndex {
  private readonly byPrefix = new Map<number, Array<{ secret: string; bytes: Buffer }>>();
  private readonly filter = new Uint8Array(1 << 24);

  constructor(secrets: string[]) {
    for (const secret of secrets) {
      const bytes = Buffer.from(secret, 'utf8');
      if (bytes.length < WINDOW) continue;
      const hash = windowHash(bytes, 0);
      this.byPrefix.set(hash, [...(this.byPrefix.get(hash) ?? []), { secret, bytes }]);
      this.filter[hash & 0xffffff] = 1;
    }
  }

  findIn(content: Buffer): Set<string> {
    const found = new Set<string>();
    if (content.length < WINDOW || this.byPrefix.size === 0) return found;
    let hash = windowHash(content, 0);
    for (let i = 0; ; i++) {
      if (this.filter[hash & 0xffffff] === 1) {
        for (const needle of this.byPrefix.get(hash) ?? []) {
          if (i + needle.bytes.length <= content.length && content.compare(needle.bytes, 0, needle.bytes.length, i, i + needle.bytes.length) === 0) found.add(needle.secret);
        }
      }
      if (i + WINDOW >= content.length) break;
      hash = (Math.imul(hash - Math.imul(content[i]!, POW), BASE) + content[i + WINDOW]!) | 0;
    }
    return found;
  }
}
