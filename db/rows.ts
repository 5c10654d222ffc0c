import type { StoredField } from '../crypto/field-codec';

/**
 * The rows knex hands back, table by table (db/migrations/ makes the columns). Drivers differ:
 * PostgreSQL returns a bigint as a string, SQLite a boolean as 0 or 1.
 */
export interface AdminUserRow {
  id: number;
  username: string;
  password_hash: string;
  created_at: string;
  last_login_at: string | null;
  failed_logins: number;
  locked_until: string | null;
}

export interface AppVersionRow {
  id: number;
  version: string;
  updated_at: string;
}

export interface StorageConfigRow {
  id: number;
  storage_type: string;
  updated_at: string;
}

export interface TokenConfigRow {
  id: number;
  hsm_type: string;
  module_path: string;
  token_label: string;
  kek_label: string;
  slot: number | null;
  pin_source: string;
  updated_at: string;
}

export interface KeyMaterialRow {
  id: number;
  dek_key_id: string;
  wrapped_dek: Buffer | null;
  wrap_mechanism: string | null;
  kek_label: string | null;
  kek_id: string | null;
  backup_copy: Buffer | null;
  gcm_encryptions: number | string;
  /** Absent before migration 010. */
  state?: string;
  kek_created_at?: string | null;
  retired_at?: string | null;
  /** Absent before migration 015. */
  recovery_copy?: Buffer | null;
  created_at: string;
  updated_at: string;
}

export interface RecoveryShareSetRow {
  id: number;
  share_set_id: string;
  shares: number;
  threshold: number;
  public_key: Buffer;
  commitments: Buffer;
  created_at: string;
}

export interface BackupKeyRow {
  id: number;
  public_key: Buffer;
  record: Buffer;
  created_at: string;
}

export interface TlsCredentialRow {
  id: number;
  private_key: StoredField;
  certificate_pem: string;
  chain_pem: string | null;
  fingerprint_sha256: string;
  subject_alt_names: string | null;
  not_after: string;
  source: string;
  active: boolean | number;
  created_at: string;
}

export interface DeviceRow {
  id: number;
  name: string;
  est_password: StoredField | null;
  cmp_shared_secret: StoredField | null;
  created_at: string;
}

export interface CredentialRow {
  id: number;
  name: string;
  private_key: StoredField;
  certificate_pem: string | null;
  created_at: string;
}

export interface LifecycleRow {
  deployment: string;
  revision: number;
  machine_version: number;
  snapshot: string;
  state: string;
  chain_head: string | null;
  updated_at: string;
}

export interface TransitionLogRow {
  id: number;
  deployment: string;
  revision: number;
  event_type: string;
  source: string;
  from_state: string;
  to_state: string;
  payload: string;
  created_at: string;
  chain_key: string;
  prev_hash: string | null;
  hash: string | null;
}

export interface TransitionLogCheckpointRow {
  deployment: string;
  revision: number;
  hash: string;
  chain_key: string;
  mac: string;
  updated_at: string;
}

export interface CustodyCanaryRow {
  id: number;
  value: StoredField;
  sha256: string;
  created_at: string;
}

export interface WebSessionRow {
  id_hash: string;
  setup_authorized: boolean | number;
  admin_user_id: number | null;
  summary_of?: string | null;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
}

/** What `insert(…).returning('id')` gives per row: an object on PostgreSQL and on SQLite, a bare id on older drivers. */
export type ReturnedId = { id: number } | number;

/** The id of the one row `insert(…).returning('id')` wrote, whichever form the driver gave it in. */
export function returnedId(rows: unknown): number {
  const [row] = rows as ReturnedId[];
  return Number(typeof row === 'object' ? row.id : row);
}
