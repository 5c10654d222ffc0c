import { X509Certificate, createHash } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, id_ce_subjectAltName, SubjectAlternativeName } from '@peculiar/asn1-x509';
import { TlsInputError } from './errors';
import { pemBlocks, toPem } from './pem';
import { formatIp, ipToBytes } from './subject-alt-names';

/** SHA-256 of DER bytes as uppercase hex pairs joined by colons, as openssl and Node print it. */
export function fingerprintOf(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
}

/**
 * Every certificate in a PEM text, in order, parsed by OpenSSL through Node. `field` is blamed when
 * a block does not parse.
 */
export function parseCertificates(text: string, field: string): X509Certificate[] {
  return pemBlocks(text)
    .filter((block) => block.label === 'CERTIFICATE')
    .map((block) => {
      try {
        return new X509Certificate(block.der);
      } catch (error) {
        throw new TlsInputError(field, 'a CERTIFICATE block does not hold a valid X.509 certificate', { cause: error });
      }
    });
}

/** The SHA-256 fingerprint of the first certificate in a PEM text. */
export function certificateFingerprint(certificatePem: string): string {
  const [certificate] = parseCertificates(certificatePem, 'certificatePem');
  if (!certificate) throw new TlsInputError('certificatePem', 'no PEM certificate ("-----BEGIN CERTIFICATE-----") found');
  return fingerprintOf(certificate.raw);
}

export function certificatePem(certificate: X509Certificate): string {
  return toPem('CERTIFICATE', certificate.raw);
}

export interface CertificateFields {
  fingerprintSha256: string;
  subjectAltNames: string[];
  notBefore: string;
  notAfter: string;
}

/**
 * notBefore, notAfter and the DNS and IP subject alternative names, read with @peculiar/asn1-x509:
 * Node's X509Certificate (which has parsed and validated the certificate) gives neither in a
 * structured form on Node 20, and @peculiar/x509's parser throws on SANs it cannot print (an
 * otherName it does not know), which imported certificates do carry.
 */
function readCertificateFields(der: Uint8Array): { notBefore: Date; notAfter: Date; subjectAltNames: string[] } {
  const { validity, extensions } = AsnConvert.parse(der, Certificate).tbsCertificate;
  const extension = extensions?.find((candidate) => candidate.extnID === id_ce_subjectAltName);
  const names: string[] = [];
  for (const name of extension ? AsnConvert.parse(extension.extnValue, SubjectAlternativeName) : []) {
    if (name.dNSName !== undefined) names.push(`DNS:${name.dNSName.toLowerCase()}`);
    // Only a 4- or 16-byte value is a host: 8 or 32 bytes are an address with a mask (a name constraint).
    const address = name.iPAddress === undefined ? null : ipToBytes(name.iPAddress);
    if (address) names.push(`IP:${formatIp(address)}`);
  }
  return { notBefore: validity.notBefore.getTime(), notAfter: validity.notAfter.getTime(), subjectAltNames: [...new Set(names)] };
}

export function describeCertificate(certificate: X509Certificate, field: string): CertificateFields {
  let fields: ReturnType<typeof readCertificateFields>;
  try {
    fields = readCertificateFields(certificate.raw);
  } catch (error) {
    throw new TlsInputError(field, "the certificate's validity or subject alternative names cannot be read", { cause: error });
  }
  return {
    fingerprintSha256: fingerprintOf(certificate.raw),
    subjectAltNames: fields.subjectAltNames,
    notBefore: fields.notBefore.toISOString(),
    notAfter: fields.notAfter.toISOString(),
  };
}

/**
 * The certificates that follow `leaf` up to the root as far as `others` allow, then the rest in their
 * given order; duplicates (and copies of the leaf) dropped. PKCS#12 bags and hand-made chain files
 * come in any order, and some TLS clients insist on the path order.
 */
export function orderChain(leaf: X509Certificate, others: X509Certificate[]): X509Certificate[] {
  const seen = new Set([fingerprintOf(leaf.raw)]);
  const remaining = others.filter((certificate) => {
    const fingerprint = fingerprintOf(certificate.raw);
    if (seen.has(fingerprint)) return false;
    seen.add(fingerprint);
    return true;
  });
  const ordered: X509Certificate[] = [];
  for (let current = leaf; ;) {
    if (current.subject === current.issuer && current.checkIssued(current)) break;
    const issuer = remaining.find((candidate) => current.checkIssued(candidate) && current.verify(candidate.publicKey));
    if (!issuer) break;
    ordered.push(issuer);
    remaining.splice(remaining.indexOf(issuer), 1);
    current = issuer;
  }
  return [...ordered, ...remaining];
}
