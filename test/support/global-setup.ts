import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One directory for everything the suite writes; workers inherit it through the environment. */
export default async function globalSetup(): Promise<void> {
  process.env.KEYWARD_TEST_RUN = mkdtempSync(join(tmpdir(), 'keyward-test-'));
}
