import { Router } from 'express';
import { listNodes } from '../../node-health';
import { Readiness, readiness } from '../../node-readiness';
import type { WebDeps } from '../web-deps';

/**
 * Probes and metrics: no session, no cookie, answered from the watcher's last reading (at most one
 * interval old, and re-read at once after every event this process sends), so a probe storm does
 * not become a database storm.
 */
export function probeRoutes(deps: WebDeps, router: Router = Router()): Router {
  router.get('/livez', (_req, res) => {
    res.type('text/plain').send('ok\n');
  });

  router.get('/readyz', (_req, res) => {
    const { ready, reasons } = readinessOf(deps);
    deps.metrics.ready.set(ready ? 1 : 0);
    // The summaries only: a probe is anonymous, and a token's error code is for the administrator.
    res
      .status(ready ? 200 : 503)
      .type('text/plain')
      .send(ready ? `ready: ${deps.watcher.current!.state}\n` : `not ready: ${reasons.map((reason) => reason.summary).join('; ')}\n`);
  });

  router.get('/status.json', async (_req, res) => {
    const i = await deps.runtime.engine.inspect({ historyLimit: 0 });
    // Public: where the lifecycle is, nothing about why (a reason can name tokens and their errors).
    res.json({ state: i.state, wizardState: i.wizardState, accepts: i.accepts, revision: i.revision, tls: i.context.tls });
  });

  router.get('/metrics', async (_req, res) => {
    const { ready } = readinessOf(deps);
    deps.metrics.ready.set(ready ? 1 : 0);
    deps.metrics.nodeReady.set(ready ? 1 : 0);
    if (deps.node?.lastBeatAt) deps.metrics.nodeHeartbeat.set(deps.node.lastBeatAt / 1000);
    if (deps.node) deps.metrics.observeNodes((await listNodes(deps.runtime).catch(() => [])).map((node) => node.state));
    deps.metrics.tlsNotAfter.set(Date.parse(deps.tls.notAfter) / 1000);
    await deps.keyMetrics.refresh();
    await deps.backupMetrics.refresh();
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  return router;
}

/** This node's readiness: its own (`keyward start`), or, where no node runs, the lifecycle's alone. */
function readinessOf(deps: WebDeps): Readiness {
  if (deps.node) return deps.node.readiness;
  return readiness({ booted: deps.booted(), state: deps.watcher.current?.state ?? null, watcherHealthy: deps.watcher.healthy, bootDeferred: null }, []);
}
