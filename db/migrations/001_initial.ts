import type { Knex } from 'knex';

/**
 * The first schema: key material, TLS credentials, devices, credentials, CAs, the lifecycle and its log. Secret columns (est_password, cmp_shared_secret, private_key) are bytes:
 * UTF-8 plaintext under software storage, the AES-256-GCM format of docs/formats.md under HSM storage. Binary key material is stored
 * as bytes; its formats are in docs/formats.md. Times are ISO-8601 UTC strings, identical on SQLite and PostgreSQL.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('app_version', (t) => {
    t.integer('id').primary();
    t.string('version', 64).notNullable();
    t.string('updated_at', 32).notNullable();
  });
  await db.schema.createTable('key_storage_config', (t) => {
    t.integer('id').primary();
    t.string('storage_type', 32).notNullable();
    t.string('updated_at', 32).notNullable();
  });
  await db.schema.createTable('pkcs11_token_config', (t) => {
    t.integer('id').primary();
    t.string('hsm_type', 32).notNullable();
    t.string('module_path', 1024).notNullable();
    t.string('token_label', 32).notNullable();
    t.string('kek_label', 255).notNullable();
    t.integer('slot').nullable();
    t.string('pin_source', 1024).notNullable();
    t.string('updated_at', 32).notNullable();
  });
  await db.schema.createTable('key_material', (t) => {
    t.increments('id');
    t.string('dek_key_id', 16).notNullable().unique();
    t.binary('wrapped_dek').nullable();
    t.string('wrap_mechanism', 64).nullable();
    t.string('kek_label', 255).nullable();
    t.string('kek_id', 64).nullable();
    t.binary('backup_copy').nullable();
    t.bigInteger('gcm_encryptions').notNullable().defaultTo(0);
    t.string('created_at', 32).notNullable();
    t.string('updated_at', 32).notNullable();
  });
  await db.schema.createTable('tls_server_credentials', (t) => {
    t.increments('id');
    t.binary('private_key').notNullable();
    t.text('certificate_pem').notNullable();
    t.text('chain_pem').nullable();
    t.string('fingerprint_sha256', 95).notNullable();
    t.text('subject_alt_names').nullable();
    t.string('not_after', 32).notNullable();
    t.string('source', 32).notNullable();
    t.boolean('active').notNullable().defaultTo(false);
    t.string('created_at', 32).notNullable();
  });
  await db.schema.createTable('devices', (t) => {
    t.increments('id');
    t.string('name', 255).notNullable().unique();
    t.binary('est_password').nullable();
    t.binary('cmp_shared_secret').nullable();
    t.string('created_at', 32).notNullable();
  });
  await db.schema.createTable('credentials', (t) => {
    t.increments('id');
    t.string('name', 255).notNullable().unique();
    t.binary('private_key').notNullable();
    t.text('certificate_pem').nullable();
    t.string('created_at', 32).notNullable();
  });
  await db.schema.createTable('cas', (t) => {
    t.increments('id');
    t.string('name', 255).notNullable().unique();
    t.string('key_location', 16).notNullable();
    t.integer('credential_id').nullable().references('id').inTable('credentials');
    t.string('token_key_label', 255).nullable();
    t.boolean('active').notNullable().defaultTo(true);
    t.string('deactivation_reason', 1024).nullable();
    t.string('deactivated_at', 32).nullable();
    t.string('created_at', 32).notNullable();
  });
  await db.schema.createTable('lifecycle', (t) => {
    t.string('deployment', 64).primary();
    t.integer('revision').notNullable();
    t.integer('machine_version').notNullable();
    t.text('snapshot').notNullable();
    t.string('state', 255).notNullable();
    t.string('updated_at', 32).notNullable();
  });
  await db.schema.createTable('transition_log', (t) => {
    t.increments('id');
    t.string('deployment', 64).notNullable();
    t.integer('revision').notNullable();
    t.string('event_type', 64).notNullable();
    t.string('source', 64).notNullable();
    t.string('from_state', 255).notNullable();
    t.string('to_state', 255).notNullable();
    t.text('payload').notNullable();
    t.string('created_at', 32).notNullable();
    t.unique(['deployment', 'revision']);
  });
}

export async function down(db: Knex): Promise<void> {
  for (const table of ['transition_log', 'lifecycle', 'cas', 'credentials', 'devices', 'tls_server_credentials', 'key_material', 'pkcs11_token_config', 'key_storage_config', 'app_version']) {
    await db.schema.dropTableIfExists(table);
  }
}
