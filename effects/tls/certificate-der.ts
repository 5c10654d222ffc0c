import { formatIp } from './subject-alt-names';

/**
 * Just enough DER to read a certificate's validity and subject alternative names. Node's
 * X509Certificate (which has parsed and validated the certificate before this runs) gives neither in
 * a structured form on Node 20, and @peculiar/x509's parser throws on SANs it cannot print (an
 * otherName it does not know), which imported certificates do carry.
 */

interface Tlv {
  tag: number;
  /** Offset of the value within the buffer. */
  start: number;
  end: number;
}

function readTlv(der: Uint8Array, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new RangeError('DER: truncated');
  const tag = der[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new RangeError('DER: multi-byte tags are not used in certificates');
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4 || start + count > limit) throw new RangeError('DER: bad length');
    length = 0;
    for (let i = 0; i < count; i += 1) length = length * 256 + der[start + i]!;
    start += count;
  }
  if (start + length > limit) throw new RangeError('DER: truncated');
  return { tag, start, end: start + length };
}

function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let offset = parent.start; offset < parent.end; ) {
    const child = readTlv(der, offset, parent.end);
    out.push(child);
    offset = child.end;
  }
  return out;
}

const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;

function readTime(der: Uint8Array, tlv: Tlv): Date {
  const text = Buffer.from(der.subarray(tlv.start, tlv.end)).toString('ascii');
  const match = (tlv.tag === UTC_TIME ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/ : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/).exec(text);
  if (!match || (tlv.tag !== UTC_TIME && tlv.tag !== GENERALIZED_TIME)) throw new RangeError('DER: bad certificate time');
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [number, number, number, number, number, number];
  // RFC 5280 §4.1.2.5.1: a two-digit year below 50 is 20YY.
  const fullYear = tlv.tag === UTC_TIME ? (year < 50 ? 2000 + year : 1900 + year) : year;
  return new Date(Date.UTC(fullYear, month - 1, day, hour, minute, second));
}

const SAN_OID = Buffer.from([0x55, 0x1d, 0x11]); // 2.5.29.17
const DNS_NAME = 0x82;
const IP_ADDRESS = 0x87;

function readSubjectAltNames(der: Uint8Array, extensions: Tlv): string[] {
  for (const extension of children(der, extensions)) {
    const [oid, ...rest] = children(der, extension);
    if (!oid || !Buffer.from(der.subarray(oid.start, oid.end)).equals(SAN_OID)) continue;
    const value = rest[rest.length - 1]!;
    const names = readTlv(der, value.start, value.end);
    const out: string[] = [];
    for (const name of children(der, names)) {
      const bytes = der.subarray(name.start, name.end);
      if (name.tag === DNS_NAME) out.push(`DNS:${Buffer.from(bytes).toString('latin1').toLowerCase()}`);
      // 8 or 32 bytes would be an address with a mask: a name constraint, not a host.
      else if (name.tag === IP_ADDRESS && (bytes.length === 4 || bytes.length === 16)) out.push(`IP:${formatIp(bytes)}`);
    }
    return [...new Set(out)];
  }
  return [];
}

/** notBefore, notAfter and the DNS and IP subject alternative names of a DER certificate. */
export function readCertificateFields(der: Uint8Array): { notBefore: Date; notAfter: Date; subjectAltNames: string[] } {
  const certificate = readTlv(der, 0, der.length);
  const tbs = children(der, certificate)[0];
  if (!tbs) throw new RangeError('DER: empty certificate');
  const fields = children(der, tbs);
  // Without the optional [0] version the fields shift by one.
  const base = fields[0]?.tag === 0xa0 ? 1 : 0;
  const validity = fields[base + 3];
  if (!validity) throw new RangeError('DER: no validity');
  const [notBefore, notAfter] = children(der, validity);
  if (!notBefore || !notAfter) throw new RangeError('DER: bad validity');
  const extensionsWrapper = fields.slice(base + 6).find((field) => field.tag === 0xa3);
  const extensions = extensionsWrapper ? children(der, extensionsWrapper)[0] : undefined;
  return {
    notBefore: readTime(der, notBefore),
    notAfter: readTime(der, notAfter),
    subjectAltNames: extensions ? readSubjectAltNames(der, extensions) : [],
  };
}
