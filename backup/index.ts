/** The backup archive and the consistent database copy: what the CLI, restore and the drill use. */
export { BackupArchiveError, isBackupArchiveError, type BackupArchiveErrorCode } from './archive-errors';
export { type ArchiveEntry, type EntryData, MANIFEST_NAME } from './archive-entries';
export { createArchive, type ArchiveProgress, type CreateArchiveOptions, type CreatedArchive } from './archive-writer';
export { verifyArchive, extractArchive, type ArchiveHeaderInfo, type VerifiedArchive, type VerifiedEntry, type ReadArchiveOptions } from './archive-reader';
export {
  compareArchiveVersions,
  compareVersions,
  hostIdentity,
  type ArchiveManifest,
  type DatabaseEngine,
  type DatabaseForm,
  MANIFEST_VERSION,
  type HostIdentity,
  type ManifestInput,
  type VersionComparison,
  type VersionOrder,
} from './archive-manifest';
export { fileEntry } from './file-entry';
export { KEYWARD_VERSION } from './keyward-version';
export { copySqliteDatabase } from './database-copy';
export { DatabaseExport, type ExportDescriptor, type ExportOptions } from './database-export';
export { importDatabase, migrateToSchemaVersion, type ImportOptions, type ImportSummary } from './database-import';
export { DatabaseBackup, exportSqliteFile, type DatabaseBackupOptions } from './database-backup';
export { DatabaseCopyError, isDatabaseCopyError, type DatabaseCopyErrorCode } from './database-errors';
export { appliedMigrations, engineOf, readSchema, schemaVersionOf, type ColumnInfo, type LogicalType, type TableInfo } from './database-schema';
