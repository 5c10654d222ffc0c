import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { DatabaseConfig, databaseConfigFromEnv } from '../db/database';
import { DEFAULT_KDF_CEILING, KdfParams, MAX_KDF_CEILING, MINIMUM_KDF } from '../crypto/kdf-params';
import packageJson from '../package.json';
import { Environment, readEnvironment } from './config-schema';
import type { RotationPolicyConfig } from './rotation-policy';

/**
 * Everything keyward reads from its environment, checked by one schema (server/config-schema.ts;
 * the README lists the variables).
 * No secret is configured here: PINs live in files under the secrets directory, passwords are typed.
 */
export interface KeywardConfig {
  appVersion: string;
  home: string;
  database: DatabaseConfig;
  deployment: string;
  tlsDir: string;
  secretsDir: string;
  softhsmConf: string;
  pkcs11Module: string;
  tokenLabel: string;
  kekLabel: string;
  host: string;
  port: number;
  defaultSubjectAltNames: string[];
  scriptsDir: string;
  kdf: KdfParams;
  /** The most Argon2id parameters read from an archive or a backup copy may ask for. */
  kdfCeiling: KdfParams;
  outageRetrySeconds: number;
  /** How long a BOOT lease outlives its holder's last renewal (docs/lifecycle.md "The engine"). */
  bootLeaseMs: number;
  /** How long recovery shares typed in during auto-restore stay in this process's memory. */
  recoveryShareTtlSeconds: number;
  /** When a key is due for rotation, and whether `keyward start` rotates it by itself. */
  rotation: RotationPolicyConfig;
}

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
export const PROJECT_ROOT = resolve(__dirname, '..', __dirname.includes(`${join('dist', 'server')}`) ? '..' : '.');

export function loadConfig(env: NodeJS.ProcessEnv = process.env): KeywardConfig {
  const v = readEnvironment(env);
  const home = resolve(v.KEYWARD_HOME ?? join(PROJECT_ROOT, 'var'));
  const path = (value: string | undefined, fallback: string) => (value ? resolve(value) : fallback);
  const kdf: KdfParams = {
    memoryKiB: v.KEYWARD_ARGON2_MEMORY_KIB ?? MINIMUM_KDF.memoryKiB,
    iterations: v.KEYWARD_ARGON2_ITERATIONS ?? MINIMUM_KDF.iterations,
    parallelism: v.KEYWARD_ARGON2_PARALLELISM ?? MINIMUM_KDF.parallelism,
  };
  return {
    appVersion: packageJson.version,
    home,
    database: databaseConfigFromEnv({ DATABASE_URL: v.DATABASE_URL, KEYWARD_SQLITE: v.KEYWARD_SQLITE }, join(home, 'keyward.sqlite')),
    deployment: v.KEYWARD_DEPLOYMENT,
    tlsDir: path(v.KEYWARD_TLS_DIR, join(home, 'tls')),
    secretsDir: path(v.KEYWARD_SECRETS_DIR, join(home, 'secrets')),
    softhsmConf: path(v.SOFTHSM2_CONF, join(home, 'softhsm2.conf')),
    pkcs11Module: v.KEYWARD_PKCS11_MODULE ?? SOFTHSM_MODULE,
    tokenLabel: v.KEYWARD_TOKEN_LABEL,
    kekLabel: v.KEYWARD_KEK_LABEL,
    host: v.KEYWARD_HOST,
    port: v.KEYWARD_PORT,
    defaultSubjectAltNames: (v.KEYWARD_TLS_SANS ?? `localhost,127.0.0.1,${hostname()}`)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    scriptsDir: join(PROJECT_ROOT, 'scripts'),
    kdf,
    kdfCeiling: readKdfCeiling(v, kdf),
    outageRetrySeconds: v.KEYWARD_OUTAGE_RETRY_SECONDS,
    bootLeaseMs: v.KEYWARD_BOOT_LEASE_MS,
    recoveryShareTtlSeconds: v.KEYWARD_RECOVERY_SHARE_TTL_SECONDS,
    rotation: {
      dekMaxEncryptions: v.KEYWARD_DEK_MAX_ENCRYPTIONS,
      dekMaxAgeDays: v.KEYWARD_DEK_MAX_AGE_DAYS,
      kekMaxAgeDays: v.KEYWARD_KEK_MAX_AGE_DAYS,
      autoRotate: v.KEYWARD_AUTO_ROTATE,
      checkIntervalSeconds: v.KEYWARD_ROTATION_CHECK_SECONDS,
    },
  };
}

const CEILING_VARIABLES: Array<[keyof KdfParams, 'KEYWARD_KDF_MAX_MEMORY_KIB' | 'KEYWARD_KDF_MAX_ITERATIONS' | 'KEYWARD_KDF_MAX_PARALLELISM', string]> = [
  ['memoryKiB', 'KEYWARD_KDF_MAX_MEMORY_KIB', 'KEYWARD_ARGON2_MEMORY_KIB'],
  ['iterations', 'KEYWARD_KDF_MAX_ITERATIONS', 'KEYWARD_ARGON2_ITERATIONS'],
  ['parallelism', 'KEYWARD_KDF_MAX_PARALLELISM', 'KEYWARD_ARGON2_PARALLELISM'],
];

/**
 * The reading side's ceiling: DEFAULT_KDF_CEILING unless configured, and never below what this
 * keyward itself writes with (an unset ceiling follows a raised KEYWARD_ARGON2_*; a set one that is
 * lower is an error, since keyward would write what it then refuses to read).
 */
function readKdfCeiling(v: Environment, kdf: KdfParams): KdfParams {
  const ceiling = { ...DEFAULT_KDF_CEILING };
  for (const [key, name, written] of CEILING_VARIABLES) {
    const configured = v[name];
    const set = configured !== undefined;
    ceiling[key] = configured ?? Math.max(DEFAULT_KDF_CEILING[key], kdf[key]);
    if (ceiling[key] > MAX_KDF_CEILING[key]) throw new Error(`${set ? name : written} must be at most ${MAX_KDF_CEILING[key]}`);
    if (ceiling[key] < kdf[key]) throw new Error(`${name} (${ceiling[key]}) is below the Argon2id parameter keyward writes with (${kdf[key]}): it would refuse its own backups`);
  }
  return ceiling;
}
