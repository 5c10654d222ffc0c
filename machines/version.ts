import { parse, type SemVer } from 'semver';

/**
 * A Semantic Versioning 2.0 version as keyward writes it (a leading "v" allowed), or null for
 * anything else: semver's own leniencies (surrounding spaces, a leading "=") are not versions here.
 */
export function parseVersion(text: string): SemVer | null {
  return /^v?\d/.test(text) && !/\s/.test(text) ? parse(text) : null;
}

/** Semantic Versioning 2.0 precedence: build metadata ignored, a pre-release sorts before its release. */
export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  if (!x || !y) throw new RangeError(`cannot compare versions ${JSON.stringify(a)} and ${JSON.stringify(b)}`);
  return x.compare(y);
}
