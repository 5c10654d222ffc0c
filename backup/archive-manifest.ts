import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { BackupArchiveError } from './archive-errors';
import type { WrittenEntry } from './archive-entries';
import { KEYWARD_VERSION } from './keyward-version';
import { compareVersions, parseVersion } from '../machines/version';

export { compareVersions };

export type DatabaseEngine = 'sqlite' | 'postgresql';

/** How the archive holds the database: the SQLite file alone, or the engine-neutral export. */
export type DatabaseForm = 'sqlite-file' | 'export';

/** The version this keyward writes; it reads 1 (no databaseForm) as well. */
export const MANIFEST_VERSION = 2;

export interface HostIdentity {
  hostname: string;
  /**
   * An application-specific id derived from /etc/machine-id (systemd's advice: never publish the
   * machine id itself), or null where none is readable. Equal ids mean the same machine.
   */
  machineId: string | null;
}

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface ArchiveManifest {
  format: 'keyward-backup-manifest';
  manifestVersion: 1 | 2;
  keywardVersion: string;
  /** The newest applied knex migration, e.g. "001_initial". */
  schemaVersion: string | null;
  host: HostIdentity;
  createdAt: string;
  databaseEngine: DatabaseEngine | null;
  /** Version 2 on; absent in version 1, where an SQLite archive holds the file and the export. */
  databaseForm?: DatabaseForm | null;
  /** Head of the transition log's hash chain when the backup was taken. */
  logChainHead: string | null;
  /** Every other entry, in archive order; manifest.json itself is not listed. */
  entries: WrittenEntry[];
  extras: { [key: string]: JsonValue };
}

/** What the caller knows about the backup; the rest is detected. */
export interface ManifestInput {
  schemaVersion: string | null;
  databaseEngine: DatabaseEngine | null;
  databaseForm?: DatabaseForm | null;
  logChainHead: string | null;
  keywardVersion?: string;
  host?: HostIdentity;
  createdAt?: Date;
  extras?: { [key: string]: JsonValue };
}

export function buildManifest(input: ManifestInput, entries: WrittenEntry[]): ArchiveManifest {
  return {
    format: 'keyward-backup-manifest',
    manifestVersion: MANIFEST_VERSION,
    keywardVersion: input.keywardVersion ?? KEYWARD_VERSION,
    schemaVersion: input.schemaVersion,
    host: input.host ?? hostIdentity(),
    createdAt: (input.createdAt ?? new Date()).toISOString(),
    databaseEngine: input.databaseEngine,
    databaseForm: input.databaseForm ?? null,
    logChainHead: input.logChainHead,
    entries,
    extras: input.extras ?? {},
  };
}

const MACHINE_ID_FILES = ['/etc/machine-id', '/var/lib/dbus/machine-id'];

export function hostIdentity(): HostIdentity {
  for (const file of MACHINE_ID_FILES) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch {
      continue;
    }
    if (!/^[0-9a-f]{32}$/.test(text)) continue;
    // As sd_id128_get_machine_app_specific(): HMAC keyed by the machine id over an application id.
    const id = createHmac('sha256', Buffer.from(text, 'hex')).update('keyward/host-id/v1').digest('hex').slice(0, 32);
    return { hostname: hostname(), machineId: id };
  }
  return { hostname: hostname(), machineId: null };
}

/** Checks the shape of a parsed manifest.json; anything off is MANIFEST_INVALID. */
export function parseManifest(bytes: Buffer): ArchiveManifest {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    // The parser's message quotes the text; none of it goes into ours.
    throw new BackupArchiveError('MANIFEST_INVALID', 'manifest.json is not valid JSON');
  }
  const invalid = (why: string) => new BackupArchiveError('MANIFEST_INVALID', `manifest.json is invalid: ${why}`);
  if (!isObject(value)) throw invalid('it is not an object');
  if (value.format !== 'keyward-backup-manifest') throw invalid('its format is not keyward-backup-manifest');
  if (typeof value.manifestVersion !== 'number') throw invalid('manifestVersion is missing');
  if (value.manifestVersion !== 1 && value.manifestVersion !== MANIFEST_VERSION) {
    throw new BackupArchiveError('ARCHIVE_VERSION_UNSUPPORTED', `the manifest has version ${value.manifestVersion}; this keyward reads versions 1 and ${MANIFEST_VERSION}`);
  }
  if (typeof value.keywardVersion !== 'string' || parseVersion(value.keywardVersion) === null) throw invalid('keywardVersion is not a version number');
  if (value.schemaVersion !== null && typeof value.schemaVersion !== 'string') throw invalid('schemaVersion is not a string or null');
  if (!isObject(value.host) || typeof value.host.hostname !== 'string' || (value.host.machineId !== null && typeof value.host.machineId !== 'string')) throw invalid('host is malformed');
  if (typeof value.createdAt !== 'string' || Number.isNaN(Date.parse(value.createdAt))) throw invalid('createdAt is not a time');
  if (value.databaseEngine !== null && value.databaseEngine !== 'sqlite' && value.databaseEngine !== 'postgresql') throw invalid('databaseEngine is neither sqlite, postgresql nor null');
  if (value.manifestVersion === 1) delete value.databaseForm;
  else if (value.databaseForm !== null && value.databaseForm !== 'sqlite-file' && value.databaseForm !== 'export') throw invalid('databaseForm is neither sqlite-file, export nor null');
  if (value.logChainHead !== null && typeof value.logChainHead !== 'string') throw invalid('logChainHead is not a string or null');
  if (!isObject(value.extras)) throw invalid('extras is not an object');
  if (!Array.isArray(value.entries)) throw invalid('entries is not a list');
  for (const entry of value.entries as unknown[]) {
    if (
      !isObject(entry) ||
      typeof entry.name !== 'string' ||
      !Number.isSafeInteger(entry.size) ||
      (entry.size as number) < 0 ||
      typeof entry.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(entry.sha256)
    ) {
      throw invalid('an entry lacks a name, a size or a SHA-256');
    }
  }
  return value as unknown as ArchiveManifest;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export type VersionOrder = 'newer' | 'same' | 'older';

export interface VersionComparison {
  keyward: VersionOrder;
  schema: VersionOrder;
  /** newer if either is newer (restore refuses), older if either is older (restore migrates), else same. */
  overall: VersionOrder;
}

/** How the archive's versions stand against the running keyward's: `newer` means the archive is newer. */
export function compareArchiveVersions(archive: Pick<ArchiveManifest, 'keywardVersion' | 'schemaVersion'>, running: { keywardVersion: string; schemaVersion: string | null }): VersionComparison {
  const keyward = order(compareVersions(archive.keywardVersion, running.keywardVersion));
  const schema = order(compareMigrationNames(archive.schemaVersion, running.schemaVersion));
  const overall: VersionOrder = keyward === 'newer' || schema === 'newer' ? 'newer' : keyward === 'older' || schema === 'older' ? 'older' : 'same';
  return { keyward, schema, overall };
}

function order(sign: number): VersionOrder {
  return sign > 0 ? 'newer' : sign < 0 ? 'older' : 'same';
}

/** knex applies migrations in name order; a database with none applied sorts first. */
function compareMigrationNames(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null || b === null) return a === null ? -1 : 1;
  return a < b ? -1 : 1;
}
