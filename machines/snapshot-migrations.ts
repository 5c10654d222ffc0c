/**
 * Explicit migrations of persisted snapshots between machine versions: entry N turns a version-N
 * snapshot into a version-N+1 one. A renamed or removed state gets its migration here; without one,
 * restoring fails loudly instead of silently landing somewhere else.
 */
export type SnapshotMigration = (snapshot: unknown) => unknown;

export const SNAPSHOT_MIGRATIONS: Record<number, SnapshotMigration> = {
  // Version 2 deactivates a lost token's CAs after the new token is set up, no longer at BOOT or at
  // DECLARE_TOKEN_LOST: a deactivation interrupted there moves on to the temporary TLS credential
  // that followed it, and the CAs wait for the new token.
  1: (snapshot) => {
    const persisted = snapshot as { value: unknown };
    const value = JSON.stringify(persisted.value);
    if (value === JSON.stringify({ startup: { restoring: { RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED: 'deactivatingLostCas' } } })) {
      return { ...persisted, value: { startup: { restoring: { RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED: 'issuingTemporaryTlsForHsmSetup' } } } };
    }
    if (value === JSON.stringify({ outage: 'deactivatingLostCas' })) return { ...persisted, value: { outage: 'issuingTemporaryTls' } };
    return snapshot;
  },
  // Version 3 adds the key-rotation states and `keyRotation` (null: none under way); every
  // version-2 state still exists, and the context's new field takes its initial value on load.
  2: (snapshot) => snapshot,
};

export function migrateSnapshot(fromVersion: number, snapshot: unknown, toVersion: number, migrations = SNAPSHOT_MIGRATIONS): unknown {
  let current = snapshot;
  for (let version = fromVersion; version < toVersion; version++) {
    const migrate = migrations[version];
    if (!migrate) throw new Error(`no snapshot migration from machine version ${version} to ${version + 1}`);
    current = migrate(current);
  }
  return current;
}
