import { isHsmStorage, StorageType } from '../../hsm/storage-type';
import type { WebDeps } from './web-deps';

/** Where the keys are and the certificate served, read live: what the status and summary pages show. */
export interface CustodyFacts {
  storageType: StorageType | null;
  hsm: boolean;
  token: Awaited<ReturnType<WebDeps['runtime']['store']['storage']['token']>>;
  kekLabel: string | null;
  kekId: string | null;
  /** The primary DEK's key id (new values are sealed with it). */
  dekKeyId: string | null;
  backupPasswordSet: boolean;
  served: { fingerprintSha256: string; notAfter: string };
}

export async function custodyFacts(deps: WebDeps): Promise<CustodyFacts & { material: Awaited<ReturnType<WebDeps['runtime']['store']['keyMaterial']['current']>> }> {
  const { store } = deps.runtime;
  const storageType = await store.storage.storageType();
  const token = await store.storage.token();
  const material = await store.keyMaterial.current();
  return {
    storageType,
    hsm: isHsmStorage(storageType),
    token,
    kekLabel: material?.wrapped?.kek.label ?? token?.kekLabel ?? null,
    kekId: material?.wrapped?.kek.id || null,
    dekKeyId: material?.dekKeyId ?? null,
    backupPasswordSet: material?.backupCopy != null,
    served: { fingerprintSha256: deps.tls.fingerprintSha256, notAfter: deps.tls.notAfter },
    material,
  };
}
