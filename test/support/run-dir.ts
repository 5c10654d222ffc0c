import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Every file a test writes (databases, tokens, logs) goes under one directory per suite run, so the
 * final secret scan (test/support/global-teardown.ts) can read all of it.
 */
export function runRoot(): string {
  const root = process.env.KEYWARD_TEST_RUN ?? join(tmpdir(), 'keyward-test-adhoc');
  mkdirSync(root, { recursive: true });
  return root;
}

export function testDir(name: string): string {
  return mkdtempSync(join(runRoot(), `${name.replace(/[^A-Za-z0-9_-]/g, '_')}-`));
}
