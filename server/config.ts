import { hostname } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { DatabaseConfig, databaseConfigFromEnv } from '../db/database';
import { DEFAULT_KDF_CEILING, KdfParams, MAX_KDF_CEILING, MINIMUM_KDF } from '../hsm/backup-copy';
import packageJson from '../package.json';

/**
 * Everything keyward reads from its environment, in one place (the README lists the variables).
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
}

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
export const PROJECT_ROOT = resolve(__dirname, '..', __dirname.includes(`${join('dist', 'server')}`) ? '..' : '.');

export function loadConfig(env: NodeJS.ProcessEnv = process.env): KeywardConfig {
  const home = resolve(env.KEYWARD_HOME ?? join(PROJECT_ROOT, 'var'));
  const path = (value: string | undefined, fallback: string) => (value ? resolve(value) : fallback);
  const port = Number(env.KEYWARD_PORT ?? 8443);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`KEYWARD_PORT must be a port number, not ${env.KEYWARD_PORT}`);
  const positive = (name: string, fallback: number) => {
    const value = env[name] === undefined ? fallback : Number(env[name]);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
    return value;
  };
  const kdf: KdfParams = {
    memoryKiB: positive('KEYWARD_ARGON2_MEMORY_KIB', MINIMUM_KDF.memoryKiB),
    iterations: positive('KEYWARD_ARGON2_ITERATIONS', MINIMUM_KDF.iterations),
    parallelism: positive('KEYWARD_ARGON2_PARALLELISM', MINIMUM_KDF.parallelism),
  };
  const kdfCeiling = readKdfCeiling(env, kdf, positive);
  const module = env.KEYWARD_PKCS11_MODULE ?? SOFTHSM_MODULE;
  if (!isAbsolute(module)) throw new Error('KEYWARD_PKCS11_MODULE must be an absolute path');
  return {
    appVersion: packageJson.version,
    home,
    database: databaseConfigFromEnv(env, join(home, 'keyward.sqlite')),
    deployment: env.KEYWARD_DEPLOYMENT ?? 'default',
    tlsDir: path(env.KEYWARD_TLS_DIR, join(home, 'tls')),
    secretsDir: path(env.KEYWARD_SECRETS_DIR, join(home, 'secrets')),
    softhsmConf: path(env.SOFTHSM2_CONF, join(home, 'softhsm2.conf')),
    pkcs11Module: module,
    tokenLabel: env.KEYWARD_TOKEN_LABEL ?? 'Trustpoint-SoftHSM',
    kekLabel: env.KEYWARD_KEK_LABEL ?? 'trustpoint-kek',
    host: env.KEYWARD_HOST ?? '127.0.0.1',
    port,
    defaultSubjectAltNames: (env.KEYWARD_TLS_SANS ?? `localhost,127.0.0.1,${hostname()}`).split(',').map((s) => s.trim()).filter(Boolean),
    scriptsDir: join(PROJECT_ROOT, 'scripts'),
    kdf,
    kdfCeiling,
    outageRetrySeconds: positive('KEYWARD_OUTAGE_RETRY_SECONDS', 30),
  };
}

const CEILING_VARIABLES: Array<[keyof KdfParams, string, string]> = [
  ['memoryKiB', 'KEYWARD_KDF_MAX_MEMORY_KIB', 'KEYWARD_ARGON2_MEMORY_KIB'],
  ['iterations', 'KEYWARD_KDF_MAX_ITERATIONS', 'KEYWARD_ARGON2_ITERATIONS'],
  ['parallelism', 'KEYWARD_KDF_MAX_PARALLELISM', 'KEYWARD_ARGON2_PARALLELISM'],
];

/**
 * The reading side's ceiling: DEFAULT_KDF_CEILING unless configured, and never below what this
 * keyward itself writes with (an unset ceiling follows a raised KEYWARD_ARGON2_*; a set one that is
 * lower is an error, since keyward would write what it then refuses to read).
 */
function readKdfCeiling(env: NodeJS.ProcessEnv, kdf: KdfParams, positive: (name: string, fallback: number) => number): KdfParams {
  const ceiling = { ...DEFAULT_KDF_CEILING };
  for (const [key, name, written] of CEILING_VARIABLES) {
    const set = env[name] !== undefined && env[name] !== '';
    ceiling[key] = set ? positive(name, DEFAULT_KDF_CEILING[key]) : Math.max(DEFAULT_KDF_CEILING[key], kdf[key]);
    if (ceiling[key] > MAX_KDF_CEILING[key]) throw new Error(`${set ? name : written} must be at most ${MAX_KDF_CEILING[key]}`);
    if (ceiling[key] < kdf[key]) throw new Error(`${name} (${ceiling[key]}) is below the Argon2id parameter keyward writes with (${kdf[key]}): it would refuse its own backups`);
  }
  return ceiling;
}
