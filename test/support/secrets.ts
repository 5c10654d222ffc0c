import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runRoot } from './run-dir';

const MIN_SCANNABLE = 8;

/**
 * A fresh secret for a test, registered for the end-of-run scan: no database file, log or snapshot the
 * suite writes may contain it. Secrets are long and random so a match is never a coincidence.
 */
export function newSecret(kind: string): string {
  const secret = `${kind}-${randomBytes(12).toString('base64url')}`;
  registerSecret(secret);
  return secret;
}

export function registerSecret(secret: string): void {
  if (secret.length < MIN_SCANNABLE) throw new Error(`a scanned secret must have at least ${MIN_SCANNABLE} characters`);
  const dir = join(runRoot(), '.secrets');
  mkdirSync(dir, { recursive: true });
  appendFileSync(join(dir, `${process.pid}.txt`), `${secret}\n`);
}

/**
 * A secret that one file shows on purpose (the console log of the node that printed a set-up code):
 * the scan looks for it in every other file.
 */
export function registerSecretShownIn(secret: string, path: string): void {
  registerSecret(secret);
  const dir = join(runRoot(), '.secrets');
  appendFileSync(join(dir, `${process.pid}.shown`), `${path}\t${secret}\n`);
}

/** Files that hold a secret on purpose (a PIN file, a password file handed to the CLI): not scanned. */
export function registerSecretSource(path: string): void {
  const dir = join(runRoot(), '.secrets');
  mkdirSync(dir, { recursive: true });
  appendFileSync(join(dir, `${process.pid}.sources`), `${path}\n`);
}
