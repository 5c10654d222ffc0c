import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { DatabaseConfig } from '../db/database';
import { describeDatabase } from '../db/database';
import type { Store } from '../db/store';
import type { KdfParams } from '../crypto/backup-copy';
import { ArchiveEntry, ArchiveProgress, BackupArchiveError, createArchive, CreatedArchive, DatabaseBackup } from '../backup';
import type { KeyCustody } from './key-custody';
import { checkPasswordStrength } from './password-policy';
import { readTlsFiles } from '../tls';
import { backupWorkPrefix, removeStaleTemporaries } from '../backup/stale-temporaries';
import { auditTransitionLog } from './transition-log-audit';

export interface BackupSource {
  home: string;
  tlsDir: string;
  database: DatabaseConfig;
  deployment: string;
  /** The configuration as it may be written down: paths, labels, names; never a PIN or password. */
  publicConfig: Record<string, string | number | string[]>;
  store: Store;
  custody: KeyCustody;
}

export interface BackupResult extends CreatedArchive {
  logChainIntact: boolean;
  canary: boolean;
}

/**
 * One encrypted archive, made while the server runs (docs/backup-format.md): a consistent copy of the
 * database, the configuration without secrets, the TLS material, the transition log, and the manifest
 * with the log's chain head. The token is not in it (its KEK never leaves it) and neither are PINs:
 * a restore on another host goes through auto-restore with the backup password.
 */
export async function createBackup(
  source: BackupSource,
  output: string,
  passphrase: string,
  options: { kdf?: KdfParams; onProgress?: (progress: ArchiveProgress) => void; onCheckpoint?: (name: string) => Promise<void> } = {},
): Promise<BackupResult> {
  // Refused before anything at all is touched, the canary included. The passphrase guards a copy
  // of every secret in the store, so it meets the backup password's rules.
  checkPasswordStrength(passphrase, 'backup passphrase');
  if (existsSync(output)) throw new BackupArchiveError('OUTPUT_EXISTS', `${output} already exists; an archive is never written over an existing file`);
  let canary = false;
  try {
    await source.custody.ensureDek();
    await source.store.canary.ensure();
    canary = true;
  } catch {
    // A locked hierarchy (auto-restore pending) cannot seal a canary; the drill will say there is none.
    canary = Boolean(
      await source.store
        .db('custody_canary')
        .first('id')
        .catch(() => null),
    );
  }
  const verdict = await auditTransitionLog(source.store, source.custody.keyring, source.deployment);
  const log = await source.store.lifecycle.chain(source.deployment);
  const tls = await readTlsFiles(source.tlsDir);
  // What a killed backup left (its own database copies) goes before this one adds another.
  await removeStaleTemporaries(source.home, { restoreStaging: false });
  const workDir = await mkdtemp(backupWorkPrefix(source.home));
  const database = new DatabaseBackup(source.database, { workDir });
  try {
    async function* entries(): AsyncGenerator<ArchiveEntry> {
      let first = true;
      for await (const entry of database) {
        yield entry;
        // Crash tests stop here: the database copy in the work directory, the archive half written.
        if (first) await options.onCheckpoint?.('backup:database-archived');
        first = false;
      }
      yield { name: 'config.json', data: Buffer.from(`${JSON.stringify({ ...source.publicConfig, database: describeDatabase(source.database) }, null, 2)}\n`) };
      if (tls) {
        yield { name: 'tls/server.crt', data: Buffer.from(tls.certificatePem) };
        yield { name: 'tls/chain.crt', data: Buffer.from(tls.chainPem ?? '') };
        yield { name: 'tls/server.key', data: Buffer.from(tls.privateKeyPem) };
      }
      yield { name: 'transition-log.jsonl', data: Buffer.from(log.map((row) => JSON.stringify(row)).join('\n') + (log.length ? '\n' : '')) };
    }
    const archive = await createArchive(output, passphrase, entries(), {
      kdf: options.kdf,
      onProgress: options.onProgress,
      manifestExtras: () => ({
        schemaVersion: database.schemaVersion,
        databaseEngine: database.engine,
        databaseForm: database.form,
        logChainHead: verdict.head?.hash ?? null,
        extras: {
          deployment: source.deployment,
          logChainHeadRevision: verdict.head?.revision ?? 0,
          logChainIntact: verdict.ok,
          canary,
          tlsFingerprintSha256: tls?.fingerprintSha256 ?? null,
        },
      }),
    });
    return { ...archive, logChainIntact: verdict.ok, canary };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
