import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, PROJECT_ROOT, SOFTHSM_MODULE } from '../../server/config';
import { KeywardRuntime } from '../../server/runtime';

/** Completed installs for the benches, made through the lifecycle as any install is. */
export const CLI = join(PROJECT_ROOT, 'dist', 'server', 'cli.js');

export function writeSoftHsmConf(home: string): string {
  mkdirSync(join(home, 'tokens'), { recursive: true, mode: 0o700 });
  const conf = join(home, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(home, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  return conf;
}

/** The caller's environment without keyward's own settings, so the bench's install is the one used. */
export function withoutKeywardSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('KEYWARD_') && name !== 'SOFTHSM2_CONF' && name !== 'DATABASE_URL'));
}

export interface InProcessInstall {
  runtime: KeywardRuntime;
  env: NodeJS.ProcessEnv;
  backupPassword: string;
  adminPassword: string;
}

/** A SoftHSM install on SQLite walked through the wizard in this process; the runtime stays open. */
export async function softHsmInstallInProcess(home: string): Promise<InProcessInstall> {
  const env: NodeJS.ProcessEnv = { ...withoutKeywardSettings(process.env), KEYWARD_HOME: home, SOFTHSM2_CONF: writeSoftHsmConf(home), KEYWARD_TLS_SANS: 'localhost,127.0.0.1' };
  // The PKCS#11 module reads SOFTHSM2_CONF from this process's environment.
  process.env.SOFTHSM2_CONF = env.SOFTHSM2_CONF;
  const secret = () => randomBytes(18).toString('base64url');
  const backupPassword = `Bk-${secret()}`;
  const adminPassword = `Ad-${secret()}`;
  const runtime = new KeywardRuntime(loadConfig(env));
  try {
    await runtime.boot('bench');
    const step = async (type: string, payload: Record<string, unknown> = {}, secrets: Record<string, string> = {}) => {
      const result = await runtime.send(type, payload, secrets, 'bench');
      if (result.outcome !== 'applied') throw new Error(`${type}: ${result.outcome} ${result.message ?? ''}`);
    };
    await step('SELECT_STORAGE', { storageType: 'softhsm' });
    await step('SETUP_HSM', { hsmType: 'softhsm', modulePath: SOFTHSM_MODULE, label: 'Trustpoint-SoftHSM' }, { pin: secret(), soPin: secret() });
    await step('CHOOSE_FRESH');
    await step('GENERATE_TLS', { subjectAltNames: ['localhost', '127.0.0.1'] });
    await step('APPLY_TLS');
    await step('SET_BACKUP_PASSWORD', {}, { password: backupPassword });
    await step('SKIP_DEMO_DATA');
    await step('CREATE_ADMIN', { username: 'admin' }, { password: adminPassword });
  } catch (error) {
    await runtime.close().catch(() => undefined);
    throw error;
  }
  return { runtime, env, backupPassword, adminPassword };
}

/** A SoftHSM install walked through the wizard by the CLI; PINs and passwords random, given in files. */
export function softHsmInstallByCli(root: string): { env: NodeJS.ProcessEnv; home: string } {
  const home = mkdtempSync(join(root, 'install-'));
  const env: NodeJS.ProcessEnv = { ...withoutKeywardSettings(process.env), KEYWARD_HOME: home, SOFTHSM2_CONF: writeSoftHsmConf(home), KEYWARD_TLS_SANS: 'localhost,127.0.0.1' };
  const given = join(home, 'given');
  mkdirSync(given, { mode: 0o700 });
  let files = 0;
  const secretFile = () => {
    const path = join(given, `secret-${++files}`);
    writeFileSync(path, `${randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });
    return path;
  };
  const steps: Array<[string, Record<string, unknown> | null, Record<string, string>]> = [
    ['SELECT_STORAGE', { storageType: 'softhsm' }, {}],
    ['SETUP_HSM', { hsmType: 'softhsm', modulePath: SOFTHSM_MODULE, label: 'Trustpoint-SoftHSM' }, { pin: secretFile(), soPin: secretFile() }],
    ['CHOOSE_FRESH', null, {}],
    ['GENERATE_TLS', { subjectAltNames: ['localhost', '127.0.0.1'] }, {}],
    ['APPLY_TLS', null, {}],
    ['SET_BACKUP_PASSWORD', null, { password: secretFile() }],
    ['SKIP_DEMO_DATA', null, {}],
    ['CREATE_ADMIN', { username: 'admin' }, { password: secretFile() }],
  ];
  cli(env, ['boot']);
  for (const [event, payload, secrets] of steps) {
    const args = ['send', event];
    if (payload) args.push('--payload', JSON.stringify(payload));
    for (const [name, path] of Object.entries(secrets)) args.push('--secret', `${name}=file:${path}`);
    cli(env, args);
  }
  // The wizard's own secrets are not needed any more; the user-PIN file keyward keeps stays.
  rmSync(given, { recursive: true, force: true });
  return { env, home };
}

export function cli(env: NodeJS.ProcessEnv, args: string[]): { stdout: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) throw new Error(`keyward ${args.slice(0, 2).join(' ')} failed (exit ${result.status}): ${result.stderr}`);
  return { stdout: result.stdout };
}
