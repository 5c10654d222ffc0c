import { isAbsolute } from 'node:path';
import { Cron } from 'croner';
import { z } from 'zod';
import { DEFAULT_DEK_MAX_ENCRYPTIONS, DEFAULT_ROTATION_CHECK_SECONDS, GCM_BUDGET } from './rotation-policy';

/**
 * Every environment variable keyward reads, in one schema: server/config.ts (what the CLI and the web
 * share) and server/web/web-config.ts (the web server's own) both read through it, and the README's
 * table lists the same variables. Pure: it reads the object it is given, not process.env.
 *
 * `VAR=''` means the same as unset everywhere: the default applies. An env file or a compose file
 * that blanks a variable asks for no particular value, never for port 0, the working directory as
 * home or an empty token label.
 */
const given = (value: unknown): unknown => (value === '' ? undefined : value);

const optionalText = z.preprocess(given, z.string().optional());

function integer(name: string, min: 0 | 1, fallback: number): z.ZodType<number, unknown>;
function integer(name: string, min: 0 | 1, fallback?: undefined): z.ZodType<number | undefined, unknown>;
function integer(name: string, min: 0 | 1, fallback?: number): z.ZodType<number | undefined, unknown> {
  return optionalText.transform((raw, ctx) => {
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (Number.isInteger(value) && value >= min) return value;
    ctx.addIssue({ code: 'custom', message: `${name} must be a ${min === 0 ? 'non-negative' : 'positive'} integer` });
    return z.NEVER;
  });
}

const port = optionalText.transform((raw, ctx) => {
  if (raw === undefined) return 8443;
  const value = Number(raw);
  if (Number.isInteger(value) && value >= 0 && value <= 65535) return value;
  ctx.addIssue({ code: 'custom', message: `KEYWARD_PORT must be a port number, not ${raw}` });
  return z.NEVER;
});

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const logLevel = optionalText.transform((raw, ctx) => {
  const level = raw ?? 'info';
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as (typeof LOG_LEVELS)[number];
  ctx.addIssue({ code: 'custom', message: `KEYWARD_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}` });
  return z.NEVER;
});

const dekMaxEncryptions = optionalText.transform((raw, ctx) => {
  if (raw === undefined) return DEFAULT_DEK_MAX_ENCRYPTIONS;
  const value = Number(raw);
  if (/^[0-9]+$/.test(raw.trim()) && value >= 1 && value <= GCM_BUDGET) return value;
  ctx.addIssue({ code: 'custom', message: `KEYWARD_DEK_MAX_ENCRYPTIONS must be a whole number from 1 to ${GCM_BUDGET} (GCM's limit of 2^32 encryptions per DEK), not ${raw}` });
  return z.NEVER;
});

/** An age limit in days: a positive number (fractions allowed), or off (the default). */
const maxAgeDays = (name: string) =>
  optionalText.transform((raw, ctx): number | null => {
    if (raw === undefined || raw.trim().toLowerCase() === 'off') return null;
    const value = Number(raw);
    if (/^[0-9]*\.?[0-9]+$/.test(raw.trim()) && value > 0) return value;
    ctx.addIssue({ code: 'custom', message: `${name} must be a positive number of days, or off, not ${raw}` });
    return z.NEVER;
  });

const onOff = (name: string) =>
  optionalText.transform((raw, ctx) => {
    const value = (raw ?? 'off').trim().toLowerCase();
    if (value === 'on' || value === 'off') return value === 'on';
    ctx.addIssue({ code: 'custom', message: `${name} must be on or off, not ${raw}` });
    return z.NEVER;
  });

/** Cron syntax (croner's: five fields, or six with seconds first), or unset: no schedule. */
const cronPattern = (name: string) =>
  optionalText.transform((raw, ctx): string | null => {
    if (raw === undefined) return null;
    try {
      new Cron(raw.trim()).stop();
      return raw.trim();
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `${name} must be a cron pattern such as "0 3 * * *" (${(error as Error).message.replace(/^CronPattern: /, '')}), not ${raw}` });
      return z.NEVER;
    }
  });

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** An age limit such as 90m, 26h or 8d (in seconds), or off (the default). */
const maxAge = (name: string) =>
  optionalText.transform((raw, ctx): number | null => {
    if (raw === undefined || raw.trim().toLowerCase() === 'off') return null;
    const match = /^([0-9]+)\s*([smhd])$/.exec(raw.trim());
    if (match && Number(match[1]) > 0) return Number(match[1]) * DURATION_UNITS[match[2]!]!;
    ctx.addIssue({ code: 'custom', message: `${name} must be a duration such as 90m, 26h or 8d, or off, not ${raw}` });
    return z.NEVER;
  });

const absolutePath = (name: string) => optionalText.refine((path) => path === undefined || isAbsolute(path), `${name} must be an absolute path`);

/** Defaults that depend on other settings (the home, the host name) are filled in by the loaders. */
export const ENVIRONMENT = z.object({
  // server/config.ts
  KEYWARD_HOME: optionalText,
  DATABASE_URL: optionalText,
  KEYWARD_SQLITE: optionalText,
  KEYWARD_DEPLOYMENT: optionalText.transform((value) => value ?? 'default'),
  KEYWARD_TLS_DIR: optionalText,
  KEYWARD_SECRETS_DIR: optionalText,
  SOFTHSM2_CONF: optionalText,
  KEYWARD_PKCS11_MODULE: absolutePath('KEYWARD_PKCS11_MODULE'),
  KEYWARD_TOKEN_LABEL: optionalText.transform((value) => value ?? 'Trustpoint-SoftHSM'),
  KEYWARD_KEK_LABEL: optionalText.transform((value) => value ?? 'trustpoint-kek'),
  KEYWARD_HOST: optionalText.transform((value) => value ?? '127.0.0.1'),
  KEYWARD_PORT: port,
  KEYWARD_TLS_SANS: optionalText,
  KEYWARD_ARGON2_MEMORY_KIB: integer('KEYWARD_ARGON2_MEMORY_KIB', 1),
  KEYWARD_ARGON2_ITERATIONS: integer('KEYWARD_ARGON2_ITERATIONS', 1),
  KEYWARD_ARGON2_PARALLELISM: integer('KEYWARD_ARGON2_PARALLELISM', 1),
  KEYWARD_KDF_MAX_MEMORY_KIB: integer('KEYWARD_KDF_MAX_MEMORY_KIB', 1),
  KEYWARD_KDF_MAX_ITERATIONS: integer('KEYWARD_KDF_MAX_ITERATIONS', 1),
  KEYWARD_KDF_MAX_PARALLELISM: integer('KEYWARD_KDF_MAX_PARALLELISM', 1),
  KEYWARD_OUTAGE_RETRY_SECONDS: integer('KEYWARD_OUTAGE_RETRY_SECONDS', 1, 30),
  KEYWARD_BOOT_LEASE_MS: integer('KEYWARD_BOOT_LEASE_MS', 1, 10_000),
  // effects/recovery-share-collector.ts: how long shares typed in during auto-restore stay in memory.
  KEYWARD_RECOVERY_SHARE_TTL_SECONDS: integer('KEYWARD_RECOVERY_SHARE_TTL_SECONDS', 1, 900),
  KEYWARD_DEK_MAX_ENCRYPTIONS: dekMaxEncryptions,
  KEYWARD_DEK_MAX_AGE_DAYS: maxAgeDays('KEYWARD_DEK_MAX_AGE_DAYS'),
  KEYWARD_KEK_MAX_AGE_DAYS: maxAgeDays('KEYWARD_KEK_MAX_AGE_DAYS'),
  KEYWARD_AUTO_ROTATE: onOff('KEYWARD_AUTO_ROTATE'),
  KEYWARD_ROTATION_CHECK_SECONDS: integer('KEYWARD_ROTATION_CHECK_SECONDS', 1, DEFAULT_ROTATION_CHECK_SECONDS),
  // server/node-health.ts
  KEYWARD_HEARTBEAT_SECONDS: integer('KEYWARD_HEARTBEAT_SECONDS', 1, 5),
  // server/web/web-config.ts
  KEYWARD_LOG_LEVEL: logLevel,
  KEYWARD_SESSION_IDLE_MINUTES: integer('KEYWARD_SESSION_IDLE_MINUTES', 1, 30),
  KEYWARD_SESSION_MAX_HOURS: integer('KEYWARD_SESSION_MAX_HOURS', 1, 12),
  KEYWARD_WATCH_INTERVAL_MS: integer('KEYWARD_WATCH_INTERVAL_MS', 1, 1000),
  KEYWARD_SHUTDOWN_GRACE_MS: integer('KEYWARD_SHUTDOWN_GRACE_MS', 1, 10_000),
  KEYWARD_HSTS_SECONDS: integer('KEYWARD_HSTS_SECONDS', 0, 0),
  KEYWARD_RESTORE_UPLOAD_MB: integer('KEYWARD_RESTORE_UPLOAD_MB', 1, 64),
  // server/backup-schedule.ts
  KEYWARD_BACKUP_SCHEDULE: cronPattern('KEYWARD_BACKUP_SCHEDULE'),
  KEYWARD_BACKUP_DIR: absolutePath('KEYWARD_BACKUP_DIR'),
  KEYWARD_BACKUP_KEEP: integer('KEYWARD_BACKUP_KEEP', 1, 7),
  KEYWARD_BACKUP_PASSPHRASE_FILE: absolutePath('KEYWARD_BACKUP_PASSPHRASE_FILE'),
  KEYWARD_DRILL_PASSWORD_FILE: absolutePath('KEYWARD_DRILL_PASSWORD_FILE'),
  KEYWARD_BACKUP_MAX_AGE: maxAge('KEYWARD_BACKUP_MAX_AGE'),
  KEYWARD_DRILL_MAX_AGE: maxAge('KEYWARD_DRILL_MAX_AGE'),
});

export type Environment = z.output<typeof ENVIRONMENT>;

/** The environment checked; the first bad variable is the error, its message names it. */
export function readEnvironment(env: NodeJS.ProcessEnv): Environment {
  const parsed = ENVIRONMENT.safeParse(env);
  if (!parsed.success) throw new Error(parsed.error.issues[0]!.message);
  return parsed.data;
}
