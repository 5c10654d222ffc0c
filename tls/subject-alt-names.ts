import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import { TlsInputError, quote } from './errors';

/** More names than this is a pasted list gone wrong, not a server's identity. */
export const MAX_SUBJECT_ALT_NAMES = 100;

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** The 4 or 16 bytes of an IPv4 or IPv6 address, or null. Zone ids (`fe80::1%eth0`) are not addresses. */
export function ipToBytes(text: string): Buffer | null {
  if (isIPv4(text)) return Buffer.from(ipaddr.IPv4.parse(text).toByteArray());
  if (!isIPv6(text) || text.includes('%')) return null;
  // ipaddr.js reads the deprecated IPv4-compatible "::a.b.c.d" as IPv4-mapped (::ffff:a.b.c.d): spell its zeros out.
  return Buffer.from(ipaddr.IPv6.parse(text.replace(/^::(?=\d+\.)/, '0:0:0:0:0:0:')).toByteArray());
}

/** RFC 5952 text of an address: lowercase, the longest run of two or more zero groups as `::`. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length !== 4 && bytes.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  return ipaddr.fromByteArray(Array.from(bytes)).toString();
}

function dnsName(raw: string): string {
  const name = raw.toLowerCase().replace(/\.$/, '');
  if (/[^\x20-\x7e]/.test(name)) {
    throw new TlsInputError('subjectAltNames', `${quote(raw)} is not an ASCII host name; write internationalized names in their xn-- form`);
  }
  if (name.length === 0 || name.length > 253) throw new TlsInputError('subjectAltNames', `${quote(raw)} is not a valid DNS name (1 to 253 characters)`);
  const labels = name.split('.');
  const wildcard = labels[0] === '*' && labels.length > 1;
  for (const label of wildcard ? labels.slice(1) : labels) {
    if (!LABEL.test(label)) {
      throw new TlsInputError(
        'subjectAltNames',
        `${quote(raw)} is not a valid DNS name: labels are 1 to 63 letters, digits or hyphens, not starting or ending with a hyphen; a wildcard is only "*." at the start`,
      );
    }
  }
  // "999.1.1.1" would pass the label rule; a name ending in digits is a mistyped address.
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) {
    throw new TlsInputError('subjectAltNames', `${quote(raw)} is neither an IP address nor a DNS name (a DNS name does not end in a numeric label)`);
  }
  return `DNS:${name}`;
}

function ipName(raw: string, explicit: boolean): string | null {
  const address = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : raw;
  const bytes = ipToBytes(address);
  if (bytes) return `IP:${formatIp(bytes)}`;
  if (explicit) throw new TlsInputError('subjectAltNames', `${quote(raw)} is not an IPv4 or IPv6 address`);
  return null;
}

function normalizeOne(entry: string): string {
  // "IP Address:" is how openssl and Node print an IP SAN; operators paste that.
  const prefixed = /^(DNS|IP(?: Address)?)\s*:\s*(.*)$/i.exec(entry);
  if (prefixed) {
    const value = prefixed[2]!.trim();
    if (value.length === 0) throw new TlsInputError('subjectAltNames', `${quote(entry)} has no value after the prefix`);
    return prefixed[1]!.toUpperCase() === 'DNS' ? dnsName(value) : ipName(value, true)!;
  }
  return ipName(entry, false) ?? dnsName(entry);
}

/**
 * Subject alternative names as an operator types them: comma or line separated, each `DNS:name`,
 * `IP:address` (or `IP Address:address`) or a bare name or address. Returns them normalized (`DNS:lowercase.name`,
 * `IP:127.0.0.1`, `IP:::1`), in input order, without duplicates.
 */
export function parseSubjectAltNames(input: string | string[]): string[] {
  const entries = (Array.isArray(input) ? input : [input])
    .flatMap((item) => (typeof item === 'string' ? item.split(/[,\r\n]+/) : []))
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
  if (Array.isArray(input) && input.some((item) => typeof item !== 'string')) {
    throw new TlsInputError('subjectAltNames', 'subject alternative names must be strings');
  }
  const names = [...new Set(entries.map(normalizeOne))];
  if (names.length === 0) throw new TlsInputError('subjectAltNames', 'at least one subject alternative name (a DNS name or an IP address) is required');
  if (names.length > MAX_SUBJECT_ALT_NAMES) {
    throw new TlsInputError('subjectAltNames', `${names.length} subject alternative names is more than the ${MAX_SUBJECT_ALT_NAMES} allowed`);
  }
  return names;
}
