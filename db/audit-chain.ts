import { createHmac, hkdfSync } from 'node:crypto';
import type { Knex } from 'knex';
import type { TransitionLogRow } from './rows';

/**
 * The transition log as a hash chain. Each row's hash covers the previous row's hash and the row's
 * own canonical content; it is an HMAC keyed with a key derived from the DEK ("dek:<key id>") where
 * storage is an HSM and the DEK is at hand, otherwise with a fixed public key ("none"). Editing,
 * deleting or reordering any row breaks the chain at that row. Format: docs/audit-log.md.
 */
export const GENESIS = '0'.repeat(64);
const UNKEYED = Buffer.from('keyward/transition-log/unkeyed', 'utf8');

export interface ChainKey {
  /** "dek:<key id>" or "none". */
  id: string;
  key: Buffer;
}

export const UNKEYED_CHAIN: ChainKey = { id: 'none', key: UNKEYED };

export function chainKeyFromDek(keyId: string, dek: Buffer): ChainKey {
  return { id: `dek:${keyId}`, key: Buffer.from(hkdfSync('sha256', dek, Buffer.alloc(0), 'keyward/transition-log/v1', 32)) };
}

export interface ChainedRow {
  deployment: string;
  revision: number;
  eventType: string;
  source: string;
  fromState: string;
  toState: string;
  payload: unknown;
  at: string;
  chainKey: string;
  prevHash: string;
  hash: string;
}

/** JSON with object keys sorted at every level: one spelling per value. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function canonicalRow(row: Omit<ChainedRow, 'hash' | 'prevHash'>): string {
  return canonicalJson([row.deployment, row.revision, row.eventType, row.source, row.fromState, row.toState, row.payload, row.at, row.chainKey]);
}

export function rowHash(key: Buffer, prevHash: string, row: Omit<ChainedRow, 'hash' | 'prevHash'>): string {
  return createHmac('sha256', key)
    .update(`keyward-log-v1|${prevHash}|${canonicalRow(row)}`)
    .digest('hex');
}

export type ChainProblem = 'missing' | 'link' | 'hash' | 'unverifiable';

export interface ChainVerdict {
  ok: boolean;
  rows: number;
  /** Rows whose key was not at hand (a keyed row while the DEK is locked): linked, not authenticated. */
  unverifiedRows: number;
  firstBroken: { revision: number; problem: ChainProblem; message: string } | null;
  head: { revision: number; hash: string } | null;
}

/**
 * Walks the chain in revision order. `keyFor` returns the key for a row's chain key id, or null if
 * that key is not available now (the row is then checked for its link only).
 */
export function verifyChain(rows: ChainedRow[], keyFor: (chainKey: string) => Buffer | null, from: { revision: number; hash: string } | null = null): ChainVerdict {
  // `from`: a verified row the given rows continue (a checkpoint); by default the chain's start.
  let previous = from?.hash ?? GENESIS;
  let expectedRevision = (from?.revision ?? 0) + 1;
  let unverified = 0;
  for (const row of rows) {
    if (row.revision !== expectedRevision) {
      const problem = row.revision > expectedRevision ? 'missing' : 'link';
      const message = row.revision > expectedRevision ? `revision ${expectedRevision} is missing (deleted?)` : `revision ${row.revision} appears out of order`;
      return { ok: false, rows: rows.length, unverifiedRows: unverified, firstBroken: { revision: expectedRevision, problem, message }, head: null };
    }
    if (row.prevHash !== previous) {
      return {
        ok: false,
        rows: rows.length,
        unverifiedRows: unverified,
        firstBroken: { revision: row.revision, problem: 'link', message: `revision ${row.revision} does not follow the row before it (rows reordered, deleted or replaced)` },
        head: null,
      };
    }
    const key = row.chainKey === 'none' ? UNKEYED : keyFor(row.chainKey);
    if (key === null) {
      unverified += 1;
    } else if (rowHash(key, row.prevHash, row) !== row.hash) {
      return {
        ok: false,
        rows: rows.length,
        unverifiedRows: unverified,
        firstBroken: { revision: row.revision, problem: 'hash', message: `revision ${row.revision} was altered: its content does not match its hash` },
        head: null,
      };
    }
    previous = row.hash;
    expectedRevision += 1;
  }
  const last = rows.at(-1);
  const head = last ? { revision: last.revision, hash: last.hash } : from ? { revision: from.revision, hash: from.hash } : null;
  return { ok: true, rows: rows.length, unverifiedRows: unverified, firstBroken: null, head };
}

/** Where a verification ended, vouched for by a chain key: the next one may start there. */
export interface ChainCheckpoint {
  deployment: string;
  revision: number;
  hash: string;
  /** "dek:<key id>": only a secret key can vouch; the unkeyed chain's key is public. */
  chainKey: string;
  mac: string;
}

export function checkpointMac(key: Buffer, checkpoint: Omit<ChainCheckpoint, 'mac'>): string {
  return createHmac('sha256', key)
    .update(`keyward-log-checkpoint-v1|${canonicalJson([checkpoint.deployment, checkpoint.revision, checkpoint.hash, checkpoint.chainKey])}`)
    .digest('hex');
}

export function rowFromDatabase(row: TransitionLogRow): ChainedRow {
  return {
    deployment: row.deployment,
    revision: Number(row.revision),
    eventType: row.event_type,
    source: row.source,
    fromState: row.from_state,
    toState: row.to_state,
    payload: JSON.parse(row.payload),
    at: row.created_at,
    chainKey: row.chain_key ?? 'none',
    prevHash: row.prev_hash ?? '',
    hash: row.hash ?? '',
  };
}

/** Chains rows that have no hash yet (the ones written before the chain existed), unkeyed. */
export async function chainExistingRows(db: Knex): Promise<void> {
  const deployments = await db<TransitionLogRow>('transition_log').distinct('deployment');
  for (const { deployment } of deployments) {
    let previous = GENESIS;
    const rows = await db<TransitionLogRow>('transition_log').where({ deployment }).orderBy('revision');
    for (const raw of rows) {
      const row = rowFromDatabase({ ...raw, chain_key: 'none' });
      const hash = rowHash(UNKEYED, previous, row);
      await db('transition_log').where({ id: raw.id }).update({ chain_key: 'none', prev_hash: previous, hash });
      previous = hash;
    }
  }
}
