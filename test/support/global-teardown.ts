import { rmSync } from 'node:fs';
import { scanForSecrets } from './secret-scan';

/**
 * The suite's last check: no database file, WAL, log, snapshot or token file that any test wrote
 * contains one of the suite's plaintext secrets, PINs or passwords.
 */
export default async function globalTeardown(): Promise<void> {
  const runRoot = process.env.KEYWARD_TEST_RUN;
  if (!runRoot) return;
  const extra = process.env.KEYWARD_TEST_PG_DIR ? [process.env.KEYWARD_TEST_PG_DIR] : [];
  const result = scanForSecrets(runRoot, extra);
  if (result.leaks.length > 0) {
    const lines = result.leaks.map((leak) => `  ${leak.secretKind} secret found in ${leak.file}`);
    throw new Error(`secret scan: ${result.leaks.length} leak(s) in the files the suite wrote (kept in ${runRoot}):\n${lines.join('\n')}`);
  }
  process.stdout.write(`\nsecret scan: ${result.secrets} secrets, ${result.files} files (${(result.bytes / 1048576).toFixed(1)} MiB): no leak\n`);
  if (process.env.KEYWARD_TEST_KEEP !== '1') rmSync(runRoot, { recursive: true, force: true });
}
