import type { Knex } from 'knex';
import { now } from '../clock';
import type { SecretFields } from '../secret-fields';
import { optionalSecret, requireName, ValidationError } from '../validation';
import { type CredentialRow, returnedId } from '../rows';

export interface NewCredential {
  name: string;
  privateKeyPem: string;
  certificatePem?: string | null;
}

export interface CredentialSummary {
  id: number;
  name: string;
  certificatePem: string | null;
  createdAt: string;
}

export interface Credential extends CredentialSummary {
  privateKeyPem: string;
}

/** Credentials whose private keys keyward holds (encrypted under HSM storage). */
export class CredentialRepository {
  constructor(
    private readonly db: Knex,
    private readonly secrets: SecretFields,
  ) {}

  async create(credential: NewCredential): Promise<number> {
    const name = requireName('name', credential.name);
    const privateKeyPem = optionalSecret('privateKeyPem', credential.privateKeyPem, 65536);
    if (privateKeyPem === null || !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKeyPem)) {
      throw new ValidationError('privateKeyPem', 'privateKeyPem must be a PEM private key');
    }
    return this.db.transaction(async (trx) => {
      if (await trx('credentials').where({ name }).first('id')) throw new ValidationError('name', `a credential named "${name}" exists already`);
      const sealed = await this.secrets.seal(trx, 'credentials', { private_key: privateKeyPem });
      return returnedId(
        await trx('credentials')
          .insert({ name, private_key: sealed.private_key, certificate_pem: credential.certificatePem ?? null, created_at: now() })
          .returning('id'),
      );
    });
  }

  async list(): Promise<CredentialSummary[]> {
    const rows = await this.db<CredentialRow>('credentials').orderBy('id').select('id', 'name', 'certificate_pem', 'created_at');
    return rows.map(summary);
  }

  async get(id: number): Promise<Credential | null> {
    const row = await this.db<CredentialRow>('credentials').where({ id }).first();
    if (!row) return null;
    const opened = await this.secrets.open('credentials', row, ['private_key'] as const);
    return { ...summary(row), privateKeyPem: opened.private_key! };
  }
}

function summary(row: Pick<CredentialRow, 'id' | 'name' | 'certificate_pem' | 'created_at'>): CredentialSummary {
  return {
    id: Number(row.id),
    name: row.name,
    certificatePem: row.certificate_pem ?? null,
    createdAt: row.created_at,
  };
}
