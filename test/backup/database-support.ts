import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Knex } from 'knex';
import type { ArchiveEntry } from '../../backup';
import { rawRows } from '../../db/database';
import { EXCLUDED_TABLES } from '../../backup/database-schema';

const T = '2024-05-06T07:08:09.123Z';

/** Every table of 001_initial with awkward values: NUL and 0xff bytes, NULLs, Unicode, a 2^40 counter, id gaps. */
export async function seed(db: Knex): Promise<void> {
  await db('app_version').insert({ id: 1, version: '0.1.0', updated_at: T });
  await db('key_storage_config').insert({ id: 1, storage_type: 'softhsm', updated_at: T });
  await db('pkcs11_token_config').insert({
    id: 1,
    hsm_type: 'softhsm',
    module_path: '/usr/lib/softhsm/libsofthsm2.so',
    token_label: 'Trustpoint-SoftHSM',
    kek_label: 'trustpoint-kek',
    slot: null,
    pin_source: 'file:/var/lib/keyward/pin',
    updated_at: T,
  });
  for (const [index, keyId] of ['00112233445566aa', '00112233445566bb', '00112233445566cc'].entries()) {
    await db('key_material').insert({
      dek_key_id: keyId,
      wrapped_dek: Buffer.concat([Buffer.from([0, 255, 0]), randomBytes(37)]),
      wrap_mechanism: 'CKM_AES_KEY_WRAP',
      kek_label: 'trustpoint-kek',
      kek_id: 'ab'.repeat(16),
      backup_copy: index === 1 ? null : Buffer.concat([Buffer.from('KWB1'), Buffer.alloc(20), randomBytes(99)]),
      gcm_encryptions: index === 0 ? 2 ** 40 + 7 : index,
      created_at: T,
      updated_at: T,
    });
  }
  // The newest key material row is deleted: its id must not be handed out again after a restore.
  await db('key_material').where({ dek_key_id: '00112233445566cc' }).delete();
  await db('tls_server_credentials').insert([
    {
      private_key: Buffer.concat([Buffer.from([1]), randomBytes(60)]),
      certificate_pem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
      chain_pem: null,
      fingerprint_sha256: 'AA:BB',
      subject_alt_names: '["a.example","b.example"]',
      not_after: T,
      source: 'generated',
      active: true,
      created_at: T,
    },
    {
      private_key: Buffer.from('plain pem'),
      certificate_pem: 'cert',
      chain_pem: 'chain',
      fingerprint_sha256: 'CC:DD',
      subject_alt_names: null,
      not_after: T,
      source: 'imported',
      active: false,
      created_at: T,
    },
  ]);
  for (const name of ['gerät-ü-😀', 'line\nbreak', 'quote"\'back\\slash', 'plain']) {
    await db('devices').insert({ name, est_password: name === 'plain' ? null : Buffer.concat([Buffer.from([1]), randomBytes(30)]), cmp_shared_secret: null, created_at: T });
  }
  await db('devices').where({ name: 'line\nbreak' }).delete();
  await db('credentials').insert([
    { name: 'issuing-ca', private_key: Buffer.concat([Buffer.from([1]), randomBytes(90)]), certificate_pem: 'pem', created_at: T },
    { name: 'root-ca', private_key: Buffer.from('x'), certificate_pem: null, created_at: T },
  ]);
  const [credential] = await db<{ id: number; name: string }>('credentials').where({ name: 'root-ca' }).pluck('id');
  await db('cas').insert([
    { name: 'Root CA', key_location: 'software', credential_id: credential, token_key_label: null, active: true, created_at: T },
    { name: 'Token CA', key_location: 'hsm', credential_id: null, token_key_label: 'ca-key', active: false, deactivation_reason: 'tab\t "quoted"', deactivated_at: T, created_at: T },
  ]);
  await db('lifecycle').insert({ deployment: 'default', revision: 7, machine_version: 1, snapshot: JSON.stringify({ value: 'running', context: { n: 1 } }), state: 'running', updated_at: T });
  // Tables of later migrations, where present: a text primary key, a boolean, a foreign key.
  if (await db.schema.hasTable('admin_users')) {
    await db('admin_users').insert({ username: 'admin', password_hash: '$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA', created_at: T, last_login_at: null });
    const [admin] = await db<{ id: number }>('admin_users').pluck('id');
    if (await db.schema.hasTable('web_sessions')) {
      await db('web_sessions').insert({ id_hash: 'ab'.repeat(32), setup_authorized: true, admin_user_id: admin, created_at: T, last_seen_at: T, expires_at: T });
    }
  }
  for (let revision = 1; revision <= 3; revision++) {
    await db('transition_log').insert({ deployment: 'default', revision, event_type: 'BOOT', source: 'system', from_state: 'a', to_state: 'b', payload: '{}', created_at: T });
  }
}

/** The tables as the database lists them (so later migrations' tables are compared too), those of running processes excluded (knex's lock, the BOOT lease). */
export async function tablesOf(db: Knex): Promise<string[]> {
  const sqlite = String((db.client as { config: { client: string } }).config.client) === 'sqlite3';
  const rows = await rawRows<{ name: string }>(
    db,
    sqlite
      ? "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
      : "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
  );
  const names = rows.map((row) => row.name);
  return names.filter((name) => !EXCLUDED_TABLES.has(name)).sort();
}

async function declaredTypes(db: Knex, table: string): Promise<Map<string, string>> {
  const sqlite = String((db.client as { config: { client: string } }).config.client) === 'sqlite3';
  const rows = await rawRows<{ name: string; type: string }>(
    db,
    sqlite
      ? 'SELECT name, lower(type) AS type FROM pragma_table_info(?)'
      : 'SELECT column_name AS name, data_type AS type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?',
    [table],
  );
  return new Map(rows.map((row) => [row.name, row.type]));
}

/**
 * Every row of every table, normalized by hand (not with keyward's export code): bytes as hex,
 * SQLite's 0/1 booleans as booleans, PostgreSQL's bigint strings as numbers. knex_migrations by name
 * and batch only: a restore keeps the target's own migration times.
 */
export async function dump(db: Knex): Promise<Record<string, Array<Record<string, unknown>>>> {
  const out: Record<string, Array<Record<string, unknown>>> = {};
  for (const table of await tablesOf(db)) {
    const types = await declaredTypes(db, table);
    const rows = await db(table).select<Array<Record<string, unknown>>>('*');
    out[table] = rows
      .map((row) => {
        const normalized: Record<string, unknown> = {};
        for (const [column, value] of Object.entries(row)) {
          const type = types.get(column);
          if (table === 'knex_migrations' && column === 'migration_time') continue;
          if (value === null) normalized[column] = null;
          else if (Buffer.isBuffer(value)) normalized[column] = `hex:${value.toString('hex')}`;
          else if (type === 'boolean') normalized[column] = value === true || value === 1;
          else if (type === 'bigint') normalized[column] = Number(value);
          else normalized[column] = value;
        }
        return normalized;
      })
      .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
  }
  return out;
}

/** Writes archive entries as files, the way an extraction would, for tests that skip the archive. */
export async function writeEntries(entries: AsyncIterable<ArchiveEntry>, dir: string, onEntry?: (name: string) => Promise<void>): Promise<void> {
  for await (const entry of entries) {
    const parts: Buffer[] = [];
    if (entry.data instanceof Uint8Array) parts.push(Buffer.from(entry.data));
    else for await (const chunk of entry.data) parts.push(Buffer.from(chunk as Buffer));
    const path = join(dir, ...entry.name.split('/'));
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, Buffer.concat(parts), { mode: 0o600 });
    await onEntry?.(entry.name);
  }
}
