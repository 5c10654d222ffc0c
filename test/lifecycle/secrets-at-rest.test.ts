import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportSqliteFile, extractArchive } from '../../backup';
import { openDatabase } from '../../db/database';
import * as mendPlaintextSecrets from '../../db/migrations/007_seal_plaintext_secrets';
import { CliHome } from '../support/cli';
import { decryptPerDocs, SECRET_COLUMNS } from '../support/field-format';
import { testDir } from '../support/run-dir';
import { newSecret } from '../support/secrets';
import { completeSoftHsmWizard, wizardSecrets, withStore } from '../support/wizard';
import type { StoredField } from '../../crypto/field-codec';
import type { TlsCredentialRow } from '../../db/rows';

/**
 * Secrets at rest follow the storage type (docs/formats.md §4) for every row: the TLS credential
 * the first BOOT saves before the storage type is chosen must not stay a plaintext PEM after SoftHSM
 * is chosen, neither in the database file nor in a backup.
 */
jest.setTimeout(240_000);

const PEM_PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

/** Every non-null value of every secret column, as stored. */
async function storedSecrets(cli: CliHome): Promise<{ dek: Buffer; keyId: string; values: Array<{ table: string; column: string; id: number; raw: Buffer }> }> {
  return withStore(cli, async (store, keyring) => {
    const values: Array<{ table: string; column: string; id: number; raw: Buffer }> = [];
    for (const [table, columns] of Object.entries(SECRET_COLUMNS)) {
      for (const row of await store.db(table).select<Array<Record<string, StoredField | null>>>('id', ...columns)) {
        for (const column of columns) if (row[column] !== null) values.push({ table, column, id: Number(row.id), raw: Buffer.from(row[column]!) });
      }
    }
    return { dek: Buffer.from(keyring.currentDek!.key), keyId: keyring.current!, values };
  });
}

describe('secrets at rest after a SoftHSM wizard', () => {
  let cli: CliHome;

  beforeAll(() => {
    cli = new CliHome('at-rest');
    expect(cli.run(['boot']).status).toBe(0);
    completeSoftHsmWizard(cli, wizardSecrets(), { demoData: true });
    expect(cli.inspect().state).toBe('operational');
  });

  it('every secret column of every row decrypts per docs/formats.md', async () => {
    const { dek, keyId, values } = await storedSecrets(cli);
    expect(new Set(values.map((v) => v.table))).toEqual(new Set(Object.keys(SECRET_COLUMNS)));
    for (const { table, column, id, raw } of values) {
      let read;
      try {
        read = decryptPerDocs(raw, dek, table, column);
      } catch (error) {
        throw new Error(`${table}.${column} of row ${id} does not decrypt per docs/formats.md: ${(error as Error).message}`, { cause: error });
      }
      expect({ where: `${table}.${column}#${id}`, version: read.version, keyId: read.keyId }).toEqual({ where: `${table}.${column}#${id}`, version: 1, keyId });
    }
  });

  it('no PEM private key is in the database file or in a backup (its database copy, and the export a restore onto PostgreSQL makes of it)', async () => {
    expect(PEM_PRIVATE_KEY.test(readFileSync(join(cli.home, 'keyward.sqlite')).toString('latin1'))).toBe(false);
    const passphrase = `Pp-${newSecret('passphrase')}`;
    const archive = join(testDir('at-rest-archive'), 'a.kwbak');
    const backup = cli.run(['backup', '--output', archive, '--passphrase-file', cli.secretFile(passphrase)]);
    expect({ status: backup.status, stderr: backup.stderr }).toEqual({ status: 0, stderr: '' });
    const dir = join(testDir('at-rest-inside'), 'x');
    await extractArchive(archive, passphrase, dir);
    const files = readdirSync(join(dir, 'database'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    expect(files.map((f) => f.name)).toEqual(['keyward.sqlite']);
    await exportSqliteFile(join(dir, 'database', 'keyward.sqlite'), join(dir, 'database', 'export'));
    files.push(...readdirSync(join(dir, 'database', 'export'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()));
    expect(files.map((f) => f.name)).toEqual(expect.arrayContaining(['keyward.sqlite', 'export.json']));
    for (const file of files) {
      const bytes = readFileSync(join(file.parentPath, file.name));
      expect({ file: file.name, pem: PEM_PRIVATE_KEY.test(bytes.toString('latin1')) }).toEqual({ file: file.name, pem: false });
      // The export writes binary columns as base64: decode every such string too.
      const decoded = (bytes.toString('utf8').match(/"[A-Za-z0-9+/]{40,}={0,2}"/g) ?? []).map((s) => Buffer.from(s.slice(1, -1), 'base64').toString('latin1'));
      expect({ file: file.name, pem: decoded.some((d) => PEM_PRIVATE_KEY.test(d)) }).toEqual({ file: file.name, pem: false });
    }
  });

  it('migration 007 mends an install that kept a plaintext TLS key under SoftHSM storage', async () => {
    const mended = new CliHome('at-rest-mend');
    expect(mended.run(['boot']).status).toBe(0);
    completeSoftHsmWizard(mended, wizardSecrets(), { demoData: true });
    const db = openDatabase({ client: 'sqlite', filename: join(mended.home, 'keyward.sqlite') });
    try {
      // What an earlier keyward left: the first BOOT's credential, a plaintext PEM, inactive.
      const active = await db<TlsCredentialRow>('tls_server_credentials').where({ active: true }).first();
      const plaintext = Buffer.from(`-----BEGIN PRIVATE KEY-----\n${newSecret('old-boot-key')}\n-----END PRIVATE KEY-----\n`, 'utf8');
      await db('tls_server_credentials').insert({ ...active, id: undefined, private_key: plaintext, active: false });
      expect(await db('tls_server_credentials').count({ n: '*' }).first()).toEqual({ n: 2 });
      await mendPlaintextSecrets.up(db);
      const rows = await db<TlsCredentialRow>('tls_server_credentials').select('id', 'private_key', 'active');
      expect(rows).toHaveLength(1);
      expect(rows[0]!.active).toBeTruthy();
      expect(rows[0]!.private_key[0]).toBe(1);
    } finally {
      await db.destroy();
    }
    // The mended install still starts, with its active credential.
    expect(mended.run(['boot']).status).toBe(0);
    expect(mended.inspect().state).toBe('operational');
    expect(PEM_PRIVATE_KEY.test(readFileSync(join(mended.home, 'keyward.sqlite')).toString('latin1'))).toBe(false);
  });
});
