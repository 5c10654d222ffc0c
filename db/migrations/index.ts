import type { Knex } from 'knex';
import * as initial from './001_initial';
import * as adminUsers from './002_admin_users';
import * as webSessions from './003_web_sessions';
import * as transitionLogChain from './004_transition_log_chain';
import * as custodyCanary from './005_custody_canary';
import * as lifecycleChainHead from './006_lifecycle_chain_head';
import * as sealPlaintextSecrets from './007_seal_plaintext_secrets';
import * as adminLoginLimit from './008_admin_login_limit';
import * as transitionLogCheckpoint from './009_transition_log_checkpoint';
import * as keyRotation from './010_key_rotation';
import * as nodes from './011_nodes';
import * as bootLease from './012_boot_lease';
import * as sharedWebState from './013_shared_web_state';
import * as backupRuns from './014_backup_runs';
import * as recoveryShares from './015_recovery_shares';
import * as secondKek from './016_second_kek';
import * as deviceAudit from './017_device_audit';
import * as sessionSummaryPass from './018_session_summary_pass';

interface Migration {
  up(db: Knex): Promise<void>;
  down(db: Knex): Promise<void>;
}

/** Migrations are listed here rather than found on disk, so the compiled and the ts-jest runs agree. */
const migrations: Record<string, Migration> = {
  '001_initial': initial,
  '002_admin_users': adminUsers,
  '003_web_sessions': webSessions,
  '004_transition_log_chain': transitionLogChain,
  '005_custody_canary': custodyCanary,
  '006_lifecycle_chain_head': lifecycleChainHead,
  '007_seal_plaintext_secrets': sealPlaintextSecrets,
  '008_admin_login_limit': adminLoginLimit,
  '009_transition_log_checkpoint': transitionLogCheckpoint,
  '010_key_rotation': keyRotation,
  '011_nodes': nodes,
  '012_boot_lease': bootLease,
  '013_shared_web_state': sharedWebState,
  '014_backup_runs': backupRuns,
  '015_recovery_shares': recoveryShares,
  '016_second_kek': secondKek,
  '017_device_audit': deviceAudit,
  '018_session_summary_pass': sessionSummaryPass,
};

export const migrationSource: Knex.MigrationSource<string> = {
  // In name order whatever the order above: the last name is the schema version archives record.
  async getMigrations() {
    return Object.keys(migrations).sort();
  },
  getMigrationName(name) {
    return name;
  },
  async getMigration(name) {
    return migrations[name]!;
  },
};
