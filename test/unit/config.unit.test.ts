import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, PROJECT_ROOT, SOFTHSM_MODULE } from '../../server/config';
import { ENVIRONMENT } from '../../server/config-schema';
import { loadWebConfig } from '../../server/web/web-config';

/** The configuration schema alone: no token, no database, no server. */
describe('configuration', () => {
  const home = '/srv/keyward-home';
  const base = { KEYWARD_HOME: home };
  const both = (env: NodeJS.ProcessEnv) => {
    const config = loadConfig({ ...base, ...env });
    return { config, web: loadWebConfig(config, { ...base, ...env }) };
  };

  it('reads VAR= as unset in the CLI configuration and the web configuration alike: the default applies', () => {
    const defaults = both({});
    const blank = Object.fromEntries(Object.keys(ENVIRONMENT.shape).map((name) => [name, '']));
    // KEYWARD_HOME blank too: the default home, not the working directory.
    const blanked = both(blank);
    expect(blanked.config).toEqual({ ...defaults.config, ...pathsUnder(join(PROJECT_ROOT, 'var')) });
    expect(blanked.web).toEqual({
      ...defaults.web,
      uploadsDir: join(PROJECT_ROOT, 'var', 'uploads'),
      csrfKeyFile: join(PROJECT_ROOT, 'var', 'secrets', 'web-csrf-key'),
      backups: { ...defaults.web.backups, dir: join(PROJECT_ROOT, 'var', 'backups') },
    });
    expect(both({ KEYWARD_PORT: '' }).config.port).toBe(8443);
    expect(both({ KEYWARD_TOKEN_LABEL: '', KEYWARD_DEPLOYMENT: '' }).config).toMatchObject({ tokenLabel: 'Trustpoint-SoftHSM', deployment: 'default' });
    expect(both({ KEYWARD_ARGON2_ITERATIONS: '', KEYWARD_OUTAGE_RETRY_SECONDS: '', KEYWARD_SESSION_IDLE_MINUTES: '' })).toMatchObject({
      config: { kdf: { iterations: 3 }, outageRetrySeconds: 30 },
      web: { sessionIdleMs: 30 * 60_000 },
    });
    expect(both({ KEYWARD_PKCS11_MODULE: '', KEYWARD_SQLITE: '', DATABASE_URL: '' }).config).toMatchObject({
      pkcs11Module: SOFTHSM_MODULE,
      database: { client: 'sqlite', filename: join(home, 'keyward.sqlite') },
    });
  });

  function pathsUnder(dir: string) {
    return {
      home: dir,
      database: { client: 'sqlite', filename: join(dir, 'keyward.sqlite') },
      tlsDir: join(dir, 'tls'),
      secretsDir: join(dir, 'secrets'),
      softhsmConf: join(dir, 'softhsm2.conf'),
    };
  }

  it('reads the values given', () => {
    const { config, web } = both({
      KEYWARD_PORT: '0',
      KEYWARD_HOST: '0.0.0.0',
      KEYWARD_TLS_SANS: 'a.example, 10.0.0.1',
      KEYWARD_KDF_MAX_ITERATIONS: '20',
      KEYWARD_HSTS_SECONDS: '0',
      KEYWARD_LOG_LEVEL: 'debug',
      KEYWARD_RESTORE_UPLOAD_MB: '2',
    });
    expect(config).toMatchObject({ port: 0, host: '0.0.0.0', defaultSubjectAltNames: ['a.example', '10.0.0.1'], kdfCeiling: { iterations: 20 } });
    expect(web).toMatchObject({ logLevel: 'debug', hstsSeconds: 0, restoreUploadBytes: 2 * 1024 * 1024 });
  });

  it('reads the backup schedule: cron with or without seconds, ages with units, the secrets as file paths only', () => {
    expect(both({}).web.backups).toEqual({
      schedule: null,
      dir: join(home, 'backups'),
      keep: 7,
      passphraseFile: null,
      drillPasswordFile: null,
      backupMaxAgeSeconds: null,
      drillMaxAgeSeconds: null,
    });
    const { web } = both({
      KEYWARD_BACKUP_SCHEDULE: ' 0 3 * * * ',
      KEYWARD_BACKUP_DIR: '/var/backups/keyward',
      KEYWARD_BACKUP_KEEP: '14',
      KEYWARD_BACKUP_PASSPHRASE_FILE: '/run/secrets/archive-passphrase',
      KEYWARD_DRILL_PASSWORD_FILE: '/run/secrets/backup-password',
      KEYWARD_BACKUP_MAX_AGE: '26h',
      KEYWARD_DRILL_MAX_AGE: '8d',
    });
    expect(web.backups).toEqual({
      schedule: '0 3 * * *',
      dir: '/var/backups/keyward',
      keep: 14,
      passphraseFile: '/run/secrets/archive-passphrase',
      drillPasswordFile: '/run/secrets/backup-password',
      backupMaxAgeSeconds: 26 * 3600,
      drillMaxAgeSeconds: 8 * 86400,
    });
    expect(both({ KEYWARD_BACKUP_SCHEDULE: '*/5 * * * * *', KEYWARD_BACKUP_PASSPHRASE_FILE: '/p', KEYWARD_BACKUP_MAX_AGE: 'off', KEYWARD_DRILL_MAX_AGE: '90m' }).web.backups).toMatchObject({
      schedule: '*/5 * * * * *',
      backupMaxAgeSeconds: null,
      drillMaxAgeSeconds: 5400,
    });
  });

  it('refuses a bad value with a message naming the variable', () => {
    const refused = (env: NodeJS.ProcessEnv) => {
      try {
        both(env);
      } catch (error) {
        return (error as Error).message;
      }
      return 'accepted';
    };
    expect(refused({ KEYWARD_PORT: '70000' })).toBe('KEYWARD_PORT must be a port number, not 70000');
    expect(refused({ KEYWARD_PORT: 'https' })).toBe('KEYWARD_PORT must be a port number, not https');
    expect(refused({ KEYWARD_OUTAGE_RETRY_SECONDS: '0' })).toBe('KEYWARD_OUTAGE_RETRY_SECONDS must be a positive integer');
    expect(refused({ KEYWARD_ARGON2_MEMORY_KIB: '1.5' })).toBe('KEYWARD_ARGON2_MEMORY_KIB must be a positive integer');
    expect(refused({ KEYWARD_HSTS_SECONDS: '-1' })).toBe('KEYWARD_HSTS_SECONDS must be a non-negative integer');
    expect(refused({ KEYWARD_SESSION_MAX_HOURS: 'x' })).toBe('KEYWARD_SESSION_MAX_HOURS must be a positive integer');
    expect(refused({ KEYWARD_LOG_LEVEL: 'loud' })).toBe('KEYWARD_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent');
    expect(refused({ KEYWARD_PKCS11_MODULE: 'libsofthsm2.so' })).toBe('KEYWARD_PKCS11_MODULE must be an absolute path');
    expect(refused({ KEYWARD_KDF_MAX_ITERATIONS: '65' })).toBe('KEYWARD_KDF_MAX_ITERATIONS must be at most 64');
    expect(refused({ KEYWARD_BACKUP_SCHEDULE: '0 25 * * *', KEYWARD_BACKUP_PASSPHRASE_FILE: '/p' })).toMatch(
      /^KEYWARD_BACKUP_SCHEDULE must be a cron pattern such as "0 3 \* \* \*" \(.*hour.*\), not 0 25 \* \* \*$/,
    );
    expect(refused({ KEYWARD_BACKUP_SCHEDULE: 'daily', KEYWARD_BACKUP_PASSPHRASE_FILE: '/p' })).toMatch(/^KEYWARD_BACKUP_SCHEDULE must be a cron pattern/);
    expect(refused({ KEYWARD_BACKUP_SCHEDULE: '0 3 * * *' })).toBe("KEYWARD_BACKUP_SCHEDULE needs KEYWARD_BACKUP_PASSPHRASE_FILE: the file that holds the archives' passphrase");
    expect(refused({ KEYWARD_BACKUP_PASSPHRASE_FILE: 'secrets/passphrase' })).toBe('KEYWARD_BACKUP_PASSPHRASE_FILE must be an absolute path');
    expect(refused({ KEYWARD_BACKUP_KEEP: '0' })).toBe('KEYWARD_BACKUP_KEEP must be a positive integer');
    expect(refused({ KEYWARD_BACKUP_MAX_AGE: '26' })).toBe('KEYWARD_BACKUP_MAX_AGE must be a duration such as 90m, 26h or 8d, or off, not 26');
    expect(refused({ KEYWARD_DRILL_MAX_AGE: '0d' })).toBe('KEYWARD_DRILL_MAX_AGE must be a duration such as 90m, 26h or 8d, or off, not 0d');
    expect(refused({ KEYWARD_ARGON2_ITERATIONS: '13', KEYWARD_KDF_MAX_ITERATIONS: '12' })).toMatch(/^KEYWARD_KDF_MAX_ITERATIONS \(12\) is below the Argon2id parameter/);
  });

  it('documents every variable of the schema, and no other, in the README and docs/web.md', () => {
    const table = (file: string, heading: string) => {
      const text = readFileSync(join(PROJECT_ROOT, file), 'utf8');
      const section = text.slice(text.indexOf(heading)).split(/\n## /)[0]!;
      return section
        .split('\n')
        .filter((line) => line.startsWith('| `'))
        .join('\n');
    };
    const documented = new Set(`${table('README.md', '## Configuration')}\n${table('docs/web.md', '## Configuration')}`.match(/\b(KEYWARD_[A-Z0-9_]*[A-Z0-9]|DATABASE_URL|SOFTHSM2_CONF)\b/g));
    expect([...documented].sort()).toEqual(Object.keys(ENVIRONMENT.shape).sort());
  });
});
