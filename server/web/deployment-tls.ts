import type { TlsSummary } from '../../machines/effect-signatures';
import { readTlsFiles, writeTlsFiles } from '../../tls/tls-files';
import { parseSubjectAltNames } from '../../tls/subject-alt-names';
import type { KeywardRuntime } from '../runtime';

export type TlsFollowOutcome = 'current' | 'written' | 'temporary' | 'unavailable';

/**
 * Brings this node's TLS directory to the deployment's certificate. The effect that chose it
 * (APPLY_TLS, a BOOT, auto-restore) wrote only the directory of the process that ran it; every other
 * node takes the active credential from the database (its key opened with the DEK) and writes its own
 * directory, which LiveTls then swaps in. A temporary credential is not in the database (no DEK
 * could seal its key): a node keeps what it serves, and one with nothing to serve (a follower's first
 * start) makes a temporary credential of its own, as the BOOT it followed did.
 */
export async function followDeploymentTls(runtime: KeywardRuntime, tls: TlsSummary | null | undefined, options: { temporaryIfNone?: boolean } = {}): Promise<TlsFollowOutcome> {
  const { tlsDir } = runtime.config;
  const onDisk = await readTlsFiles(tlsDir).catch(() => null);
  if (tls && tls.origin !== 'temporary') {
    const expected = tls.fingerprintSha256.toUpperCase();
    if (onDisk?.fingerprintSha256 === expected) return 'current';
    const active = await activeCredential(runtime);
    if (active?.fingerprintSha256 === expected) {
      await writeTlsFiles(tlsDir, active);
      return 'written';
    }
  }
  if (onDisk || !options.temporaryIfNone) return onDisk ? 'current' : 'unavailable';
  // Loaded here only: serving never needs the certificate generator otherwise (see live-tls.ts).
  const { generateTlsCredential } = require('../../tls') as typeof import('../../tls');
  await writeTlsFiles(tlsDir, await generateTlsCredential({ subjectAltNames: parseSubjectAltNames(runtime.config.defaultSubjectAltNames) }));
  return 'temporary';
}

/** The stored active credential, or null while this node cannot open it (no DEK yet, token away). */
async function activeCredential(runtime: KeywardRuntime) {
  try {
    await followKeyset(runtime);
    return await runtime.store.tls.active();
  } catch {
    return null;
  }
}

/**
 * Takes the keyset as the database has it now: another node may have rotated it, or recovered it
 * after a token loss (this node then holds no DEK yet and unwraps it with the token's new KEK).
 */
export async function followKeyset(runtime: KeywardRuntime): Promise<void> {
  await runtime.custody.reloadKeyset();
  await runtime.custody.ensureDek();
}
