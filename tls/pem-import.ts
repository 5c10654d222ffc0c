import { TlsInputError } from './errors';
import { parseCertificates } from './certificate';
import { readInputFile } from './input-file';
import { keyMatches, parsePrivateKey } from './private-key';
import { TlsMaterial, assembleMaterial } from './tls-material';

export interface PemFiles {
  keyFile: string;
  /** The leaf first; any certificates after it are taken as the chain. */
  certificateFile: string;
  chainFile?: string | null;
}

/**
 * A key and certificate from PEM files, as other servers (and Trustpoint) keep them. The key may be
 * PKCS#8, SEC1 or PKCS#1 and comes back as PKCS#8; an encrypted key is refused rather than prompted for.
 */
export async function importPemFiles(files: PemFiles): Promise<TlsMaterial> {
  const keyText = (await readInputFile(files.keyFile, 'keyFile')).toString('utf8');
  const certificateText = (await readInputFile(files.certificateFile, 'certificateFile')).toString('utf8');
  const key = parsePrivateKey(keyText, 'keyFile');
  const [leaf, ...rest] = parseCertificates(certificateText, 'certificateFile');
  if (!leaf) throw new TlsInputError('certificateFile', 'no PEM certificate ("-----BEGIN CERTIFICATE-----") found');
  const chain = [...rest];
  if (files.chainFile) {
    const chainCertificates = parseCertificates((await readInputFile(files.chainFile, 'chainFile')).toString('utf8'), 'chainFile');
    if (chainCertificates.length === 0) throw new TlsInputError('chainFile', 'no PEM certificate found in the chain file');
    chain.push(...chainCertificates);
  }
  if (!keyMatches(leaf, key)) {
    throw new TlsInputError('keyFile', 'the private key does not belong to the certificate (the first certificate in the certificate file)');
  }
  return assembleMaterial(key, leaf, chain, 'certificateFile');
}
