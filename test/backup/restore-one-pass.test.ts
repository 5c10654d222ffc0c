import { join } from 'node:path';
import * as archiveKeys from '../../backup/archive-keys';
import { DatabaseBackup, verifyArchive, type ArchiveManifest } from '../../backup';
import { writeArchive } from '../../backup/archive-writer';
import { restoreArchive } from '../../effects/restore-service';
import { DatabaseConfig, latestSchemaVersion, migrateToLatest, openDatabase } from '../../db/database';
import { engines, freshDatabase } from '../support/databases';
import { testDir } from '../support/run-dir';
import { newSecret } from '../support/secrets';

/**
 * Issue 13 item 2: an SQLite archive holds the database once, as the file (manifest version 2);
 * a restore onto PostgreSQL exports that file itself. A restore reads the archive once. Extraction verifies every segment and the
 * manifest as it writes, so there is no separate verify pass, and Argon2id runs once.
 */
jest.setTimeout(120_000);

const passphrase = `Pp-${newSecret('passphrase')}`;

/** What keyward wrote before manifest version 2: the file and its export, no databaseForm. */
function asVersion1(manifest: ArchiveManifest): ArchiveManifest {
  const { databaseForm: _form, ...rest } = manifest;
  return { ...rest, manifestVersion: 1 };
}

async function sqliteArchive(older = false): Promise<string> {
  const dir = testDir('one-pass-source');
  const source = { client: 'sqlite' as const, filename: join(dir, 'keyward.sqlite') };
  const db = openDatabase(source);
  try {
    await migrateToLatest(db);
    await db('devices').insert({ name: 'router-1', est_password: null, cmp_shared_secret: null, created_at: new Date().toISOString() });
  } finally {
    await db.destroy();
  }
  const database = new DatabaseBackup(source, { workDir: testDir('one-pass-work'), includeExport: older });
  const archive = join(dir, 'store.kwa');
  await writeArchive(
    archive,
    passphrase,
    database,
    { manifestExtras: () => ({ schemaVersion: database.schemaVersion, databaseEngine: database.engine, databaseForm: database.form, logChainHead: null }) },
    older ? { rewriteManifest: asVersion1 } : {},
  );
  return archive;
}

it('an SQLite archive holds the database file alone, once', async () => {
  const archive = await sqliteArchive();
  const { manifest, entries } = await verifyArchive(archive, passphrase);
  expect(entries.map((entry) => entry.name)).toEqual(['database/keyward.sqlite']);
  expect(manifest).toMatchObject({ manifestVersion: 2, databaseEngine: 'sqlite', databaseForm: 'sqlite-file', schemaVersion: await latestSchemaVersion() });
});

it('a manifest version this keyward does not know is refused', async () => {
  const dir = testDir('manifest-v3');
  const archive = join(dir, 'v3.kwa');
  await writeArchive(archive, passphrase, [], { manifestExtras: { schemaVersion: null, databaseEngine: null, logChainHead: null } }, { rewriteManifest: (m) => ({ ...m, manifestVersion: 3 as 2 }) });
  await expect(verifyArchive(archive, passphrase)).rejects.toMatchObject({ code: 'ARCHIVE_VERSION_UNSUPPORTED' });
});

/** The device names a restored database holds. */
async function deviceNames(config: DatabaseConfig): Promise<string[]> {
  const db = openDatabase(config);
  try {
    return (await db('devices').pluck('name')) as string[];
  } finally {
    await db.destroy();
  }
}

describe.each(engines())('restore of an SQLite archive onto %s', (engine) => {
  afterEach(() => jest.restoreAllMocks());

  it('restores an older archive (manifest version 1: the file and its export)', async () => {
    const archive = await sqliteArchive(true);
    const { manifest, entries } = await verifyArchive(archive, passphrase);
    expect(manifest.manifestVersion).toBe(1);
    expect(entries.map((entry) => entry.name)).toContain('database/export.json');
    const target = await freshDatabase(engine, 'older');
    try {
      const home = testDir('older-home');
      await restoreArchive({ home, tlsDir: join(home, 'tls'), database: target.config, appVersion: '999.0.0' }, archive, passphrase);
      expect(await deviceNames(target.config)).toEqual(['router-1']);
    } finally {
      await target.drop();
    }
  });

  it('derives the key once and reads the archive once', async () => {
    const archive = await sqliteArchive();
    const target = await freshDatabase(engine, 'one-pass');
    try {
      const derive = jest.spyOn(archiveKeys, 'deriveArchiveKeys');
      const home = testDir('one-pass-home');
      const report = await restoreArchive({ home, tlsDir: join(home, 'tls'), database: target.config, appVersion: '999.0.0' }, archive, passphrase);
      expect(derive).toHaveBeenCalledTimes(1);
      expect(report.manifest.schemaVersion).toBe(await latestSchemaVersion());
      expect(await deviceNames(target.config)).toEqual(['router-1']);
    } finally {
      await target.drop();
    }
  });
});
