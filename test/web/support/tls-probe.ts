import { spawnSync } from 'node:child_process';

/**
 * The certificate the server presents, as an independent client sees it:
 *   openssl s_client -connect 127.0.0.1:PORT -servername localhost </dev/null | openssl x509 -noout -fingerprint -sha256
 * Each call is a new TLS connection, so it sees a live swap at once.
 */
export function servedFingerprint(port: number): string {
  const client = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost'], { input: '', timeout: 20_000 });
  if (client.status !== 0) throw new Error(`openssl s_client failed (${client.status}): ${client.stderr.toString().slice(0, 500)}`);
  const x509 = spawnSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], { input: client.stdout, timeout: 20_000 });
  if (x509.status !== 0) throw new Error(`openssl x509 failed: ${x509.stderr.toString()}`);
  return x509.stdout
    .toString()
    .trim()
    .replace(/^sha256 Fingerprint=/i, '');
}

/** openssl's SHA-256 fingerprint of a PEM certificate file. */
export function certificateFingerprint(certificateFile: string): string {
  const x509 = spawnSync('openssl', ['x509', '-in', certificateFile, '-noout', '-fingerprint', '-sha256']);
  if (x509.status !== 0) throw new Error(`openssl x509 failed: ${x509.stderr.toString()}`);
  return x509.stdout
    .toString()
    .trim()
    .replace(/^sha256 Fingerprint=/i, '');
}
