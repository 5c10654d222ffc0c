import { join } from 'node:path';
import type { KeywardConfig } from '../config';
import { PROJECT_ROOT } from '../config';
import { readEnvironment } from '../config-schema';

/**
 * The web server's own settings, read through the same environment schema as server/config.ts
 * (server/config-schema.ts). No secret is configured here.
 */
export interface WebConfig {
  logLevel: string;
  /** A session ends after this long without a request. */
  sessionIdleMs: number;
  /** …and after this long in any case. */
  sessionMaxMs: number;
  /** How often the server re-reads the lifecycle (other processes, the CLI, may change it). */
  watchIntervalMs: number;
  /** How long a shutdown waits for requests in flight before closing their connections. */
  shutdownGraceMs: number;
  /** 0: no Strict-Transport-Security (a self-signed certificate must stay click-through). */
  hstsSeconds: number;
  viewsDir: string;
  publicDir: string;
  /** Uploaded TLS files wait here (0700) for the few milliseconds the import takes. */
  uploadsDir: string;
  /** Where an earlier keyward kept the CSRF key (0600): moved into the database (web_secrets) at start. */
  csrfKeyFile: string;
  /** The largest backup archive the restore page accepts (larger ones: `keyward restore`). */
  restoreUploadBytes: number;
  /** Scheduled backups and drills (server/backup-schedule.ts), and the ages past which they count as stale. */
  backups: BackupScheduleConfig;
}

export interface BackupScheduleConfig {
  /** Cron pattern, or null: no schedule. */
  schedule: string | null;
  dir: string;
  keep: number;
  /** The archive passphrase's file (an orchestrator secret, like the PIN file): read at each run, never kept. */
  passphraseFile: string | null;
  /** The backup password's file, for the drill's auto-restore; without it the scheduled drill cannot run. */
  drillPasswordFile: string | null;
  /** Seconds, or null: no limit. */
  backupMaxAgeSeconds: number | null;
  drillMaxAgeSeconds: number | null;
}

export function loadWebConfig(config: KeywardConfig, env: NodeJS.ProcessEnv = process.env): WebConfig {
  const v = readEnvironment(env);
  const viewsDir = join(PROJECT_ROOT, 'views');
  return {
    logLevel: v.KEYWARD_LOG_LEVEL,
    sessionIdleMs: v.KEYWARD_SESSION_IDLE_MINUTES * 60_000,
    sessionMaxMs: v.KEYWARD_SESSION_MAX_HOURS * 3_600_000,
    watchIntervalMs: v.KEYWARD_WATCH_INTERVAL_MS,
    shutdownGraceMs: v.KEYWARD_SHUTDOWN_GRACE_MS,
    hstsSeconds: v.KEYWARD_HSTS_SECONDS,
    viewsDir,
    publicDir: join(viewsDir, 'public'),
    uploadsDir: join(config.home, 'uploads'),
    csrfKeyFile: join(config.secretsDir, 'web-csrf-key'),
    restoreUploadBytes: v.KEYWARD_RESTORE_UPLOAD_MB * 1024 * 1024,
    backups: backupScheduleConfig(v, config),
  };
}

function backupScheduleConfig(v: ReturnType<typeof readEnvironment>, config: KeywardConfig): BackupScheduleConfig {
  const schedule = v.KEYWARD_BACKUP_SCHEDULE;
  // Checked at start rather than at the first run, which may be a day away.
  if (schedule && !v.KEYWARD_BACKUP_PASSPHRASE_FILE) throw new Error("KEYWARD_BACKUP_SCHEDULE needs KEYWARD_BACKUP_PASSPHRASE_FILE: the file that holds the archives' passphrase");
  return {
    schedule,
    dir: v.KEYWARD_BACKUP_DIR ?? join(config.home, 'backups'),
    keep: v.KEYWARD_BACKUP_KEEP,
    passphraseFile: v.KEYWARD_BACKUP_PASSPHRASE_FILE ?? null,
    drillPasswordFile: v.KEYWARD_DRILL_PASSWORD_FILE ?? null,
    backupMaxAgeSeconds: v.KEYWARD_BACKUP_MAX_AGE,
    drillMaxAgeSeconds: v.KEYWARD_DRILL_MAX_AGE,
  };
}
