import { join } from 'node:path';
import * as archiveKeys from '../../effects/backup/archive-keys';
import { createArchive, DatabaseBackup } from '../../effects/backup';
import { restoreArchive } from '../../effects/restore-service';
import { latestSchemaVersion, migrateToLatest, openDatabase } from '../../db/database';
import { engines, freshDatabase } from '../support/databases';
import { testDir } from '../support/run-dir';
import { newSecret } from '../support/secrets';

/**
 * Issue 13 item 2: a restore reads the archive once. Extraction verifies every segment and the
 * manifest as it writes, so there is no separate verify pass, and Argon2id runs once.
 */
jest.setTimeout(120_000);

const passphrase = `Pp-${newSecret('passphrase')}`;

async function sqliteArchive(): Promise<string> {
  const dir = testDir('one-pass-source');
  const source = { client: 'sqlite' as const, filename: join(dir, 'keyward.sqlite') };
  const db = openDatabase(source);
  try {
    await migrateToLatest(db);
    await db('devices').insert({ name: 'router-1', est_password: null, cmp_shared_secret: null, created_at: new Date().toISOString() });
  } finally {
    await db.destroy();
  }
  const database = new DatabaseBackup(source, { workDir: testDir('one-pass-work') });
  const archive = join(dir, 'store.kwa');
  await createArchive(archive, passphrase, database, {
    manifestExtras: () => ({ schemaVersion: database.descriptor?.schemaVersion ?? null, databaseEngine: 'sqlite', logChainHead: null }),
  });
  return archive;
}

describe.each(engines())('restore of an SQLite archive onto %s', (engine) => {
  afterEach(() => jest.restoreAllMocks());

  it('derives the key once and reads the archive once', async () => {
    const archive = await sqliteArchive();
    const target = await freshDatabase(engine, 'one-pass');
    try {
      const derive = jest.spyOn(archiveKeys, 'deriveArchiveKeys');
      const home = testDir('one-pass-home');
      const report = await restoreArchive({ home, tlsDir: join(home, 'tls'), database: target.config, appVersion: '999.0.0' }, archive, passphrase);
      expect(derive).toHaveBeenCalledTimes(1);
      expect(report.manifest.schemaVersion).toBe(await latestSchemaVersion());
      const db = openDatabase(target.config);
      try {
        expect(await db('devices').pluck('name')).toEqual(['router-1']);
      } finally {
        await db.destroy();
      }
    } finally {
      await target.drop();
    }
  });
});
