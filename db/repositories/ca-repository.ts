import type { Knex } from 'knex';
import { now } from '../clock';
import { requireName, ValidationError } from '../validation';
import { returnedId } from '../rows';

export type CaKeyLocation = 'token' | 'db';

export interface NewCa {
  name: string;
  keyLocation: CaKeyLocation;
  credentialId?: number | null;
  tokenKeyLabel?: string | null;
}

export interface Ca {
  id: number;
  name: string;
  keyLocation: CaKeyLocation;
  credentialId: number | null;
  tokenKeyLabel: string | null;
  active: boolean;
  deactivationReason: string | null;
  deactivatedAt: string | null;
}

/** Issuing CAs and where their keys live; a CA whose key was in a lost token is deactivated, not deleted. */
export class CaRepository {
  constructor(private readonly db: Knex) {}

  async create(ca: NewCa): Promise<number> {
    const name = requireName('name', ca.name);
    if (ca.keyLocation !== 'token' && ca.keyLocation !== 'db') throw new ValidationError('keyLocation', 'keyLocation must be "token" or "db"');
    if (ca.keyLocation === 'db' && !ca.credentialId) throw new ValidationError('credentialId', 'a CA whose key is in the database needs its credential');
    if (ca.keyLocation === 'token' && !ca.tokenKeyLabel) throw new ValidationError('tokenKeyLabel', 'a CA whose key is in the token needs the key label');
    return this.db.transaction(async (trx) => {
      if (await trx('cas').where({ name }).first('id')) throw new ValidationError('name', `a CA named "${name}" exists already`);
      return returnedId(
        await trx('cas')
          .insert({
            name,
            key_location: ca.keyLocation,
            credential_id: ca.credentialId ?? null,
            token_key_label: ca.tokenKeyLabel ?? null,
            active: true,
            created_at: now(),
          })
          .returning('id'),
      );
    });
  }

  async list(): Promise<Ca[]> {
    const rows = await this.db('cas').orderBy('id');
    return rows.map(toCa);
  }

  /** Deactivates every active CA whose key lived in the token; returns how many. Running it again changes nothing. */
  async deactivateTokenCas(reason: string): Promise<number> {
    return this.db('cas').where({ key_location: 'token', active: true }).update({ active: false, deactivation_reason: reason, deactivated_at: now() });
  }
}

function toCa(row: Record<string, unknown>): Ca {
  return {
    id: Number(row.id),
    name: String(row.name),
    keyLocation: row.key_location as CaKeyLocation,
    credentialId: row.credential_id === null ? null : Number(row.credential_id),
    tokenKeyLabel: (row.token_key_label as string | null) ?? null,
    active: Boolean(row.active),
    deactivationReason: (row.deactivation_reason as string | null) ?? null,
    deactivatedAt: (row.deactivated_at as string | null) ?? null,
  };
}
