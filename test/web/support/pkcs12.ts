import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

function openssl(args: string[], input = ''): void {
  const result = spawnSync('openssl', args, { input, timeout: 30_000 });
  if (result.status !== 0) throw new Error(`openssl ${args[0]} failed (${result.status}): ${result.stderr.toString()}`);
}

/**
 * A TLS server credential made by openssl, exported with `openssl pkcs12 -export`; the export
 * password goes to openssl on stdin (`-passout stdin`), never in its arguments.
 */
export function makePkcs12(dir: string, password: string, options: { subjectAltName?: string; days?: number } = {}): { pkcs12: string; certificate: string } {
  const key = join(dir, 'server.key');
  const certificate = join(dir, 'server.crt');
  const pkcs12 = join(dir, 'server.p12');
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    key,
    '-subj',
    '/CN=keyward web test',
    '-days',
    String(options.days ?? 30),
    '-addext',
    `subjectAltName=${options.subjectAltName ?? 'DNS:localhost,IP:127.0.0.1'}`,
    '-addext',
    'extendedKeyUsage=serverAuth',
    '-out',
    certificate,
  ]);
  openssl(['pkcs12', '-export', '-inkey', key, '-in', certificate, '-name', 'keyward web test', '-passout', 'stdin', '-out', pkcs12], `${password}\n`);
  return { pkcs12, certificate };
}
