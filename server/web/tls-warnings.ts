import { isIP } from 'node:net';

/** A certificate this close to its end gets a warning before it is applied. */
export const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 86_400_000;

/** A host as compared: lower case, no brackets around an IPv6 address, no "DNS:"/"IP:" prefix, no final dot. */
const normalized = (host: string) =>
  host
    .trim()
    .toLowerCase()
    .replace(/^(dns|ip):/, '')
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '');

/** Whether a certificate's names ("DNS:…", "IP:…", as tls/certificate.ts reads them) cover a host name (RFC 6125: one wildcard label, leftmost). */
export function covers(subjectAltNames: readonly string[], host: string): boolean {
  const name = normalized(host);
  if (isIP(name)) return subjectAltNames.some((san) => san.toLowerCase() === `ip:${name}`);
  return subjectAltNames.some((san) => {
    if (!san.toLowerCase().startsWith('dns:')) return false;
    const pattern = san.slice(4).toLowerCase();
    if (pattern === name) return true;
    if (!pattern.startsWith('*.')) return false;
    const rest = name.slice(name.indexOf('.') + 1);
    return name.includes('.') && !name.startsWith('.') && rest === pattern.slice(2);
  });
}

/**
 * What an operator should know before applying a TLS credential, as sentences: the names it does
 * not cover (the one the browser used now, the configured ones), and an end within 30 days.
 */
export function tlsWarnings(credential: { subjectAltNames: readonly string[]; notAfter: string }, hosts: { request: string | null; configured: readonly string[] }, now: number): string[] {
  const warnings: string[] = [];
  const wanted = [...new Set([hosts.request, ...hosts.configured].filter((h): h is string => !!h).map(normalized))];
  const missing = wanted.filter((host) => !covers(credential.subjectAltNames, host));
  if (missing.length > 0) {
    const current = hosts.request === null ? null : normalized(hosts.request);
    const names = missing.map((host) => (host === current ? `“${host}” (the name this browser uses for keyward now)` : `“${host}”`)).join(', ');
    warnings.push(`This certificate does not name ${names}: browsers that reach keyward by ${missing.length > 1 ? 'those names' : 'that name'} will refuse the connection after it is applied.`);
  }
  const left = Date.parse(credential.notAfter) - now;
  if (left <= 0) {
    warnings.push(`This certificate expired on ${credential.notAfter.slice(0, 10)}: browsers will refuse it.`);
  } else if (left < EXPIRY_WARNING_DAYS * DAY_MS) {
    const days = Math.floor(left / DAY_MS);
    warnings.push(`This certificate expires on ${credential.notAfter.slice(0, 10)} (in ${days === 0 ? 'less than a day' : `${days} day${days === 1 ? '' : 's'}`}): plan its replacement now.`);
  }
  return warnings;
}

/** The host name a request was sent to (its Host header without the port), or null. */
export function requestHost(hostHeader: string | undefined): string | null {
  if (!hostHeader) return null;
  const match = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(hostHeader.trim());
  return match ? match[1]! : null;
}
