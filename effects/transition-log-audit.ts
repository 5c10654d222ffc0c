import { timingSafeEqual } from 'node:crypto';
import { ChainCheckpoint, chainKeyFromDek, checkpointMac, ChainVerdict, rowHash, UNKEYED_CHAIN, verifyChain } from '../db/audit-chain';
import type { Store } from '../db/store';
import type { DekKeyring } from '../crypto/dek-keyring';

/** Rows a checkpoint may fall behind before BOOT moves it: verifying them costs less than a write. */
export const CHECKPOINT_EVERY = 64;

const EMPTY: ChainVerdict = { ok: true, rows: 0, unverifiedRows: 0, firstBroken: null, head: null };

/**
 * Verifies a deployment's transition log with the keys this process holds: keyed rows need the DEK
 * they name; without it they are checked for their links only, and counted as unverified.
 */
export async function auditTransitionLog(store: Store, keyring: DekKeyring, deployment: string): Promise<ChainVerdict> {
  if (!(await store.lifecycle.tablesExist())) return EMPTY;
  return verifyChain(await store.lifecycle.chain(deployment), keysOf(keyring, await retiredChainKeys(store, keyring)));
}

/**
 * The chain keys of retired DEKs, kept sealed in the database; empty while the keyset is locked, or
 * before the schema has the table (a BOOT ahead of its migration).
 */
async function retiredChainKeys(store: Store, keyring: DekKeyring): Promise<ReadonlyMap<string, Buffer>> {
  if (keyring.current === null) return new Map();
  return store.logChainKeys.all().catch(() => new Map<string, Buffer>());
}

/**
 * BOOT's check, flat in the log's length: the rows after the last checkpoint, when a DEK this process
 * holds vouches for that checkpoint (and the checkpointed row still has the hash it vouches for);
 * otherwise — no checkpoint, its DEK not at hand, or a checkpoint that does not authenticate — the
 * whole chain. A chain found whole moves the checkpoint to its head, keyed with the current DEK, once
 * it is CHECKPOINT_EVERY rows behind (or under another key, or there is none); with
 * no DEK (software storage, a locked hierarchy) there is no secret to vouch with, and every BOOT
 * checks the whole chain. The full check of every row stays with `keyward audit verify`.
 */
export async function auditTransitionLogForBoot(store: Store, keyring: DekKeyring, deployment: string): Promise<ChainVerdict> {
  if (!(await store.lifecycle.tablesExist())) return EMPTY;
  const keyFor = keysOf(keyring, await retiredChainKeys(store, keyring));
  const checkpoint = await store.lifecycle.checkpoint(deployment);
  const verdict = (checkpoint && (await fromCheckpoint(store, keyFor, checkpoint))) ?? verifyChain(await store.lifecycle.chain(deployment), keyFor);
  const keyId = keyring.current;
  const behind = verdict.head ? verdict.head.revision - (checkpoint?.revision ?? 0) : 0;
  if (verdict.ok && verdict.head && keyId !== null && (checkpoint?.chainKey !== `dek:${keyId}` || behind >= CHECKPOINT_EVERY)) {
    const unsigned = { deployment, revision: verdict.head.revision, hash: verdict.head.hash, chainKey: `dek:${keyId}` };
    await store.lifecycle.saveCheckpoint({ ...unsigned, mac: checkpointMac(chainKeyFromDek(keyId, keyring.key(keyId)).key, unsigned) });
  }
  return verdict;
}

/** The verdict from `checkpoint` on, or null when the checkpoint cannot be trusted (then the whole chain is checked). */
async function fromCheckpoint(store: Store, keyFor: (chainKey: string) => Buffer | null, checkpoint: ChainCheckpoint): Promise<ChainVerdict | null> {
  const key = checkpoint.chainKey.startsWith('dek:') ? keyFor(checkpoint.chainKey) : null;
  if (!key || !sameHex(checkpoint.mac, checkpointMac(key, checkpoint))) return null;
  const { deployment, revision } = checkpoint;
  const row = await store.lifecycle.chainRow(deployment, revision);
  const broken = (problem: 'missing' | 'hash', message: string): ChainVerdict => ({ ok: false, rows: 0, unverifiedRows: 0, firstBroken: { revision, problem, message }, head: null });
  if (!row) return broken('missing', `revision ${revision} is missing (deleted?)`);
  const rowKey = row.chainKey === 'none' ? UNKEYED_CHAIN.key : keyFor(row.chainKey);
  if (row.hash !== checkpoint.hash || (rowKey !== null && rowHash(rowKey, row.prevHash, row) !== row.hash)) {
    return broken('hash', `revision ${revision} was altered: its content does not match its hash`);
  }
  return verifyChain(await store.lifecycle.chainAfter(deployment, revision), keyFor, { revision, hash: row.hash });
}

function keysOf(keyring: DekKeyring, retired: ReadonlyMap<string, Buffer>): (chainKey: string) => Buffer | null {
  const keys = new Map<string, Buffer | null>();
  return (chainKey) => {
    if (!keys.has(chainKey)) {
      const keyId = chainKey.startsWith('dek:') ? chainKey.slice(4) : null;
      keys.set(chainKey, keyId && keyring.has(keyId) ? chainKeyFromDek(keyId, keyring.key(keyId)).key : (retired.get(chainKey) ?? null));
    }
    return keys.get(chainKey)!;
  };
}

function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
