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
  const needles = [...secrets].map((secret) => ({ secret, bytes: Buffer.from(secret, 'utf8') }));
  for (const file of files) {
    if (file.startsWith(registry) || sources.has(file)) continue;
    if (statSync(file).size > 256 * 1024 * 1024) continue;
    const content = readFileSync(file);
    result.files += 1;
    result.bytes += content.length;
    for (const needle of needles) {
      if (shown.get(needle.secret)?.has(file)) continue;
      if (content.includes(needle.bytes)) result.leaks.push({ file, secretKind: needle.secret.split('-')[0]! });
    }
  }
  return result;
}
