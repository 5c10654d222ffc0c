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
  };
}
