import type { Knex } from 'knex';
import { now } from '../clock';
import type { SecretFields } from '../secret-fields';
import { returnedId, type TlsCredentialRow } from '../rows';

export type TlsSource = 'generated' | 'pkcs12' | 'pem';

export interface TlsCredentialInput {
  /** PKCS#8 PEM; a secret column. */
  privateKeyPem: string;
  /** The leaf certificate, PEM. */
  certificatePem: string;
  /** Intermediates and roots, concatenated PEM, issuer of the leaf first; null when there are none. */
  chainPem: string | null;
  /** SHA-256 of the leaf's DER, uppercase hex with colons: "AB:CD:...". */
  fingerprintSha256: string;
  /** The leaf's DNS and IP names, normalized: "DNS:example.com", "IP:127.0.0.1". */
  subjectAltNames: string[];
  /** ISO-8601 UTC. */
  notAfter: string;
  source: TlsSource;
}

export interface TlsCredential extends TlsCredentialInput {
  id: number;
  active: boolean;
}

/** TLS server credentials; the private key is a secret column like any other. */
export class TlsCredentialRepository {
  constructor(
    private readonly db: Knex,
    private readonly secrets: SecretFields,
  ) {}

  async save(credential: TlsCredentialInput, options: { activate: boolean }): Promise<number> {
    return this.db.transaction(async (trx) => {
      const sealed = await this.secrets.seal(trx, 'tls_server_credentials', { private_key: credential.privateKeyPem });
      if (options.activate) await trx('tls_server_credentials').update({ active: false });
      return returnedId(
        await trx('tls_server_credentials')
          .insert({
            private_key: sealed.private_key,
            certificate_pem: credential.certificatePem,
            chain_pem: credential.chainPem,
            fingerprint_sha256: credential.fingerprintSha256,
            subject_alt_names: JSON.stringify(credential.subjectAltNames),
            not_after: credential.notAfter,
            source: credential.source,
            active: options.activate,
            created_at: now(),
          })
          .returning('id'),
      );
    });
  }

  async activate(id: number): Promise<void> {
    await this.db.transaction(async (trx) => {
      const exists = await trx<TlsCredentialRow>('tls_server_credentials').where({ id }).first('id');
      if (!exists) throw new Error(`no TLS server credential ${id}`);
      await trx('tls_server_credentials').update({ active: false });
      await trx('tls_server_credentials').where({ id }).update({ active: true });
    });
  }

  async active(): Promise<TlsCredential | null> {
    const row = await this.db<TlsCredentialRow>('tls_server_credentials').where({ active: true }).orderBy('id', 'desc').first();
    return row ? this.open(row) : null;
  }

  /** The active credential's fingerprint alone: no private key opened, so no DEK needed. */
  async activeFingerprint(): Promise<string | null> {
    const row = await this.db<TlsCredentialRow>('tls_server_credentials').where({ active: true }).orderBy('id', 'desc').first('fingerprint_sha256');
    return row?.fingerprint_sha256 ?? null;
  }

  async get(id: number): Promise<TlsCredential | null> {
    const row = await this.db<TlsCredentialRow>('tls_server_credentials').where({ id }).first();
    return row ? this.open(row) : null;
  }

  private async open(row: TlsCredentialRow): Promise<TlsCredential> {
    const opened = await this.secrets.open('tls_server_credentials', row, ['private_key'] as const);
    return {
      id: Number(row.id),
      privateKeyPem: opened.private_key!,
      certificatePem: row.certificate_pem,
      chainPem: row.chain_pem ?? null,
      fingerprintSha256: row.fingerprint_sha256,
      subjectAltNames: JSON.parse(row.subject_alt_names ?? '[]') as string[],
      notAfter: row.not_after,
      source: row.source as TlsSource,
      active: Boolean(row.active),
    };
  }
}
