/**
 * Explicit migrations of persisted snapshots between machine versions: entry N turns a version-N
 * snapshot into a version-N+1 one. A renamed or removed state gets its migration here; without one,
 * restoring fails loudly instead of silently landing somewhere else.
 */
export type SnapshotMigration = (snapshot: unknown) => unknown;

export const SNAPSHOT_MIGRATIONS: Record<number, SnapshotMigration> = {};

export function migrateSnapshot(fromVersion: number, snapshot: unknown, toVersion: number, migrations = SNAPSHOT_MIGRATIONS): unknown {
  let current = snapshot;
  for (let version = fromVersion; version < toVersion; version++) {
    const migrate = migrations[version];
    if (!migrate) throw new Error(`no snapshot migration from machine version ${version} to ${version + 1}`);
    current = migrate(current);
  }
  return current;
}
