import { join } from 'node:path';
import type { KeywardConfig } from '../config';
import { PROJECT_ROOT } from '../config';

/**
 * The web server's own settings, read from the environment beside server/config.ts (which holds
 * what the CLI and the web share). No secret is configured here.
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
  /** The CSRF HMAC key (0600), shared by the processes of one home so a restart keeps forms valid. */
  csrfKeyFile: string;
  /** The largest backup archive the restore page accepts (larger ones: `keyward restore`). */
  restoreUploadBytes: number;
}

function positive(env: NodeJS.ProcessEnv, name: string, fallback: number, allowZero = false): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1)) throw new Error(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer`);
  return value;
}

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export function loadWebConfig(config: KeywardConfig, env: NodeJS.ProcessEnv = process.env): WebConfig {
  const logLevel = env.KEYWARD_LOG_LEVEL ?? 'info';
  if (!LOG_LEVELS.has(logLevel)) throw new Error(`KEYWARD_LOG_LEVEL must be one of ${[...LOG_LEVELS].join(', ')}`);
  const viewsDir = join(PROJECT_ROOT, 'views');
  return {
    logLevel,
    sessionIdleMs: positive(env, 'KEYWARD_SESSION_IDLE_MINUTES', 30) * 60_000,
    sessionMaxMs: positive(env, 'KEYWARD_SESSION_MAX_HOURS', 12) * 3_600_000,
    watchIntervalMs: positive(env, 'KEYWARD_WATCH_INTERVAL_MS', 1000),
    shutdownGraceMs: positive(env, 'KEYWARD_SHUTDOWN_GRACE_MS', 10_000),
    hstsSeconds: positive(env, 'KEYWARD_HSTS_SECONDS', 0, true),
    viewsDir,
    publicDir: join(viewsDir, 'public'),
    uploadsDir: join(config.home, 'uploads'),
    csrfKeyFile: join(config.secretsDir, 'web-csrf-key'),
    restoreUploadBytes: positive(env, 'KEYWARD_RESTORE_UPLOAD_MB', 64) * 1024 * 1024,
  };
}
