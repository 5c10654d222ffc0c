import { Router } from 'express';
import { isHsmStorage } from '../../../hsm/storage-type';
import { GCM_ENCRYPTION_LIMIT } from '../../../crypto/dek-keyring';
import { listNodes } from '../../node-health';
import { rotationsDue } from '../../rotation-policy';
import { inspectionOf, requireAdmin } from '../access';
import { custodyFacts } from '../custody-facts';
import { describeScenario } from '../scenario-text';
import { renderPage } from '../render';
import type { WebDeps } from '../web-deps';
import { PATHS } from '../wizard-paths';

/** The status page: where the keys are, how much the DEK has been used, the TLS certificate served. */
export function statusRoutes(deps: WebDeps, router: Router = Router()): Router {
  router.get(PATHS.status, ...requireAdmin(deps), async (req, res) => {
    const { store, custody, keyring } = deps.runtime;
    const inspection = inspectionOf(res);
    const { material, ...facts } = await custodyFacts(deps);
    const { storageType } = facts;
    const due = isHsmStorage(storageType) ? rotationsDue(await store.keyMaterial.keyset(), new Date(), deps.runtime.config.rotation) : [];
    let dekLoaded: string | null = null;
    if (isHsmStorage(storageType)) {
      try {
        await custody.ensureDek();
        dekLoaded = keyring.current !== null ? 'yes' : 'no';
      } catch (error) {
        dekLoaded = `no: ${(error as { code?: string }).code ?? (error as Error).name}`;
      }
    }
    renderPage(deps, req, res, 'status', {
      title: 'Status',
      inspection,
      ...facts,
      scenarioSentence: describeScenario(inspection.scenario),
      lastCompletion: inspection.context.lastCompletion ?? null,
      dekLoaded,
      gcmEncryptions: material?.gcmEncryptions ?? 0,
      gcmEncryptionsInProcess: material ? keyring.encryptions(material.dekKeyId) : 0,
      gcmLimit: GCM_ENCRYPTION_LIMIT,
      due,
      recorded: inspection.context.tls,
      nodes: await listNodes(deps.runtime),
      selfNodeId: deps.node?.nodeId ?? null,
      backups: await deps.backupMetrics.recent().catch(() => null),
      backupSchedule: deps.backups.config.schedule,
      // A second KEK (docs/lifecycle.md "A second KEK"): its token, and each KEK's health as the last BOOT saw it.
      secondKek: isHsmStorage(storageType) ? await store.secondKek.config() : null,
      keks: isHsmStorage(storageType) ? await store.secondKek.health() : [],
    });
  });

  return router;
}
