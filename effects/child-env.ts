/**
 * The environment a child process (a set-up script, openssl, pkcs11-tool) is given: what it needs to
 * run and the variables named for it, never a copy of keyward's own. keyward's environment may hold a
 * database URL with its password or a PIN (an `env:` PIN source), and every child's environment is
 * readable by its user through /proc/PID/environ.
 */
const INHERITED = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TMPDIR', 'TZ'] as const;

export function childEnvironment(extra: Record<string, string> = {}, from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of INHERITED) {
    const value = from[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}
