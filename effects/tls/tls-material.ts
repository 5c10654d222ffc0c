import { KeyObject, X509Certificate } from 'node:crypto';
import { certificatePem, describeCertificate, orderChain } from './certificate';
import { pkcs8Pem } from './private-key';

/**
 * A TLS server credential in the shape the repository stores (TlsCredentialInput without `source`).
 * Every function here returns it canonical: PKCS#8 key, certificates re-encoded from their DER with
 * LF line ends, so two materials for the same credential compare equal.
 */
export interface TlsMaterial {
  /** PKCS#8 PEM. */
  privateKeyPem: string;
  /** The leaf certificate, PEM. */
  certificatePem: string;
  /** Intermediates and roots, concatenated PEM, issuer of the leaf first; null when there are none. */
  chainPem: string | null;
  /** SHA-256 of the leaf's DER, uppercase hex with colons: "AB:CD:...". */
  fingerprintSha256: string;
  /** The leaf's DNS and IP names, normalized: "DNS:example.com", "IP:127.0.0.1", "IP:::1". */
  subjectAltNames: string[];
  /** ISO-8601 UTC. */
  notAfter: string;
  /** ISO-8601 UTC. Always set by this module; optional so that a stored credential (which lacks it) is a TlsMaterial too. */
  notBefore?: string;
}

/** Builds the material from a key and its certificate, which the caller has checked belong together. */
export function assembleMaterial(key: KeyObject, leaf: X509Certificate, others: X509Certificate[], field: string): TlsMaterial {
  const chain = orderChain(leaf, others);
  const fields = describeCertificate(leaf, field);
  return {
    privateKeyPem: pkcs8Pem(key),
    certificatePem: certificatePem(leaf),
    chainPem: chain.length > 0 ? chain.map(certificatePem).join('') : null,
    fingerprintSha256: fields.fingerprintSha256,
    subjectAltNames: fields.subjectAltNames,
    notAfter: fields.notAfter,
    notBefore: fields.notBefore,
  };
}
