import { createServer } from 'node:https';
import { AddressInfo, isIP } from 'node:net';
import { PeerCertificate, checkServerIdentity, connect } from 'node:tls';
import type { TlsMaterial } from '../../tls';

export interface ProbeResult {
  /** What checkServerIdentity was shown. */
  checked: PeerCertificate;
  peer: PeerCertificate;
  chainFingerprints: string[];
  response: string;
}

/**
 * Serves the material from a real Node https server on 127.0.0.1:0 and fetches "/" over a TLS client
 * that trusts only `trust`, checks the name with Node's own checkServerIdentity and records what it
 * saw. Rejects when the handshake or the name check fails.
 */
export async function probeTls(material: TlsMaterial, options: { trust: string; servername: string }): Promise<ProbeResult> {
  const server = createServer({ key: material.privateKeyPem, cert: material.certificatePem + (material.chainPem ?? '') }, (_req, res) => {
    res.end('keyward tls ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<ProbeResult>((resolve, reject) => {
      let checked: PeerCertificate | null = null;
      const socket = connect({
        host: '127.0.0.1',
        port,
        // RFC 6066 forbids an IP address as SNI; without it Node checks the name against `host`.
        servername: isIP(options.servername) ? undefined : options.servername,
        ca: [options.trust],
        rejectUnauthorized: true,
        checkServerIdentity: (host, certificate) => {
          checked = certificate;
          return checkServerIdentity(host, certificate);
        },
      });
      let response = '';
      let peer: PeerCertificate | null = null;
      socket.on('error', reject);
      socket.on('secureConnect', () => {
        peer = socket.getPeerCertificate(true);
        socket.write(`GET / HTTP/1.1\r\nHost: ${options.servername}\r\nConnection: close\r\n\r\n`);
      });
      socket.on('data', (chunk: Buffer) => {
        response += chunk.toString('utf8');
      });
      socket.on('end', () => {
        const chainFingerprints: string[] = [];
        for (let link: PeerCertificate | undefined = peer!; link && !chainFingerprints.includes(link.fingerprint256); link = (link as { issuerCertificate?: PeerCertificate }).issuerCertificate) {
          chainFingerprints.push(link.fingerprint256);
        }
        resolve({ checked: checked!, peer: peer!, chainFingerprints, response });
      });
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}
