import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Server } from 'node:https';
import type { SecureContextOptions } from 'node:tls';
// Not the tls/ index: that loads the certificate generator (@peculiar/x509), which serving never needs.
import { CURRENT_LINK, readTlsFiles } from '../../tls/tls-files';
import type { TlsMaterial } from '../../tls/tls-material';
import { KeywardError } from '../../errors/keyward-error';

export class NoTlsCredentialError extends KeywardError {
  constructor(dir: string) {
    super('NO_TLS_CREDENTIAL', `no TLS credential in ${dir}; the start-up did not produce one`);
    this.name = 'NoTlsCredentialError';
  }
}

/**
 * Mozilla's "intermediate" profile (v5.7) without its DHE suites: TLS 1.3, and TLS 1.2 only with
 * ECDHE and an AEAD (no CBC/SHA-1, no CCM8, no ARIA, no static RSA). The TLS 1.3 suites are named
 * too: a list without them would make Node cap the server at TLS 1.2.
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export function secureContextOptions(material: TlsMaterial): SecureContextOptions {
  return { key: material.privateKeyPem, cert: material.certificatePem + (material.chainPem ?? ''), minVersion: 'TLSv1.2', ciphers: TLS_CIPHERS };
}

/**
 * The credential this process serves, swapped live: when the machine has put another one into the
 * TLS directory (APPLY_TLS, auto-restore loading the stored one, a BOOT that issued one, whichever
 * process did it), new connections get it through setSecureContext; open ones keep theirs.
 * The directory is read through one resolution of its `current` link (see tls/tls-files.ts).
 */
export class LiveTls {
  private server: Server | null = null;
  private link: string | null;
  private refreshing: Promise<boolean> = Promise.resolve(false);

  private constructor(
    private readonly dir: string,
    private material: TlsMaterial,
    link: string | null,
    private readonly onSwap: (material: TlsMaterial) => void,
  ) {
    this.link = link;
  }

  static async load(dir: string, onSwap: (material: TlsMaterial) => void): Promise<LiveTls> {
    const link = await currentLink(dir);
    const material = await readTlsFiles(dir);
    if (!material) throw new NoTlsCredentialError(dir);
    return new LiveTls(dir, material, link, onSwap);
  }

  get fingerprintSha256(): string {
    return this.material.fingerprintSha256;
  }

  get notAfter(): string {
    return this.material.notAfter;
  }

  get options(): SecureContextOptions {
    return secureContextOptions(this.material);
  }

  attach(server: Server): void {
    this.server = server;
  }

  /**
   * Serves the directory's credential if it is not the one served now. Cheap when nothing changed
   * (one readlink); `expectedFingerprint` (the machine's record) forces a read when it differs.
   */
  refresh(expectedFingerprint?: string | null): Promise<boolean> {
    const run = this.refreshing.then(() => this.refreshOnce(expectedFingerprint ?? null));
    this.refreshing = run.catch(() => false);
    return run;
  }

  private async refreshOnce(expectedFingerprint: string | null): Promise<boolean> {
    const link = await currentLink(this.dir);
    const differs = expectedFingerprint !== null && expectedFingerprint.toUpperCase() !== this.material.fingerprintSha256;
    if (link === this.link && !differs) return false;
    const material = await readTlsFiles(this.dir);
    this.link = link;
    if (!material || material.fingerprintSha256 === this.material.fingerprintSha256) return false;
    // Builds the context first: a bad pair throws here and the old credential stays in service.
    this.server?.setSecureContext(secureContextOptions(material));
    this.material = material;
    this.onSwap(material);
    return true;
  }
}

async function currentLink(dir: string): Promise<string | null> {
  try {
    return await readlink(join(dir, CURRENT_LINK));
  } catch {
    return null;
  }
}
