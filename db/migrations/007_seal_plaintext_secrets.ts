import type { Knex } from 'knex';

/**
 * Mends installs made before the storage step sealed what was already stored: the first BOOT's TLS
 * credential kept its private key as a plaintext PEM after an HSM storage type was chosen. No DEK is
 * at hand in a migration, so such a credential cannot be sealed; it cannot be opened under HSM
 * storage either (dead), so it is deleted. An active one is replaced at the next BOOT.
 */
export async function up(db: Knex): Promise<void> {
  const config = await db<{ id: number; storage_type: string }>('key_storage_config').where({ id: 1 }).first('storage_type');
  if (config?.storage_type !== 'softhsm' && config?.storage_type !== 'physical_hsm') return;
  const rows = await db<{ id: number; private_key: Buffer | string | null }>('tls_server_credentials').select('id', 'private_key');
  // A sealed value starts with its format version (a byte below 0x20); a PEM with "-----BEGIN".
  const plaintext = rows.filter((row) => row.private_key !== null && Buffer.from(row.private_key).toString('latin1').startsWith('-----BEGIN')).map((row) => row.id);
  if (plaintext.length > 0) await db('tls_server_credentials').whereIn('id', plaintext).delete();
}

export async function down(): Promise<void> {
  // A deleted plaintext key is not brought back.
}
