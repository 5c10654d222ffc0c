import { Router } from 'express';
import { isReady } from '../lifecycle-phase';
import type { WebDeps } from '../web-deps';

/**
 * Probes and metrics: no session, no cookie, answered from the watcher's last reading (at most one
 * interval old, and re-read at once after every event this process sends), so a probe storm does
 * not become a database storm.
 */
export function probeRoutes(deps: WebDeps): Router {
  const router = Router();

  router.get('/livez', (_req, res) => {
    res.type('text/plain').send('ok\n');
  });

  router.get('/readyz', (_req, res) => {
    const inspection = deps.watcher.current;
    const state = inspection?.state ?? 'unbooted';
    let ready = deps.booted() && inspection !== null && isReady(state);
    let reason = state;
    if (ready && !deps.watcher.healthy) {
      ready = false;
      reason = 'the database does not answer';
    }
    deps.metrics.ready.set(ready ? 1 : 0);
    res
      .status(ready ? 200 : 503)
      .type('text/plain')
      .send(`${ready ? 'ready' : 'not ready'}: ${reason}\n`);
  });

  router.get('/status.json', async (_req, res) => {
    const i = await deps.runtime.engine.inspect({ historyLimit: 0 });
    // Public: where the lifecycle is, nothing about why (a reason can name tokens and their errors).
    res.json({ state: i.state, wizardState: i.wizardState, accepts: i.accepts, revision: i.revision, tls: i.context.tls });
  });

  router.get('/metrics', async (_req, res) => {
    const inspection = deps.watcher.current;
    deps.metrics.ready.set(deps.booted() && inspection !== null && isReady(inspection.state) && deps.watcher.healthy ? 1 : 0);
    deps.metrics.tlsNotAfter.set(Date.parse(deps.tls.notAfter) / 1000);
    await deps.keyMetrics.refresh();
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  return router;
}
