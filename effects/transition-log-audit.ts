import { chainKeyFromDek, ChainVerdict, verifyChain } from '../db/audit-chain';
import type { Store } from '../db/store';
import type { DekKeyring } from '../hsm/dek-keyring';

/**
 * Verifies a deployment's transition log with the keys this process holds: keyed rows need the DEK
 * they name; without it they are checked for their links only, and counted as unverified.
 */
export async function auditTransitionLog(store: Store, keyring: DekKeyring, deployment: string): Promise<ChainVerdict> {
  if (!(await store.lifecycle.tablesExist())) return { ok: true, rows: 0, unverifiedRows: 0, firstBroken: null, head: null };
  const rows = await store.lifecycle.chain(deployment);
  const keys = new Map<string, Buffer | null>();
  return verifyChain(rows, (chainKey) => {
    if (!keys.has(chainKey)) {
      const keyId = chainKey.startsWith('dek:') ? chainKey.slice(4) : null;
      keys.set(chainKey, keyId && keyring.has(keyId) ? chainKeyFromDek(keyId, keyring.key(keyId)).key : null);
    }
    return keys.get(chainKey)!;
  });
}
