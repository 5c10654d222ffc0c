import { KeyObject, X509Certificate } from 'node:crypto';
import { certificatePem, describeCertificate, orderChain } from './certificate';
import { pkcs8Pem } from './private-key';
import type { TlsCredentialInput } from '../db/repositories/tls-credential-repository';

/**
 * A TLS server credential in the shape the repository stores (TlsCredentialInput without `source`),
 * with `notBefore`, always set by this module and optional so that a stored credential (which lacks
 * it) is a TlsMaterial too. Every function here returns it canonical: PKCS#8 key, certificates
 * re-encoded from their DER with LF line ends, so two materials for the same credential compare equal.
 */
export type TlsMaterial = Omit<TlsCredentialInput, 'source'> & {
  /** ISO-8601 UTC. */
  notBefore?: string;
};

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
