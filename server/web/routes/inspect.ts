import { Router } from 'express';
import type { Request, RequestHandler } from 'express';
import type { Inspection } from '../../lifecycle-engine';
import { homeFor, inspectionOf, isAdmin, maySetUp, readLifecycle } from '../access';
import { GRAPH_VIEWS, GraphView } from '../graph-svg';
import { failureOf, timeOf } from '../history-rows';
import { phaseOf } from '../lifecycle-phase';
import { renderPage } from '../render';
import type { WebDeps } from '../web-deps';
import { PATHS } from '../wizard-paths';

const HISTORY = 50;

/**
 * The state visualizer: the machine's graph with the current state marked (the top-level states, or
 * the whole machine), the events accepted now, and the transition history with each event's source
 * and, for an effect that failed, its reason. /inspect/state.json and /inspect/graph.svg let the
 * page's script (/static/js/inspect.js) follow changes without a reload.
 * Who may look: an administrator; before completion, the session that gave the set-up code.
 */
export function inspectRoutes(deps: WebDeps, router: Router = Router()): Router {
  const mayInspect: RequestHandler = (req, res, next) => {
    const inspection = inspectionOf(res);
    const phase = phaseOf(inspection.state);
    if (isAdmin(req) || (phase !== 'operational' && maySetUp(req, phase))) return next();
    if (req.path !== PATHS.inspect) return res.status(401).json({ error: 'log in again to follow the lifecycle' });
    if (phase === 'operational' || inspection.context.wizardCompleted) return res.redirect(302, `${PATHS.login}?next=${PATHS.inspect}`);
    res.redirect(302, homeFor(req, inspection));
  };
  const guard = [readLifecycle(deps), mayInspect];

  const currentIds = async (): Promise<string[]> => {
    const { snapshot } = await deps.runtime.engine.load();
    return [...snapshot._nodes].map((node) => node.id);
  };
  const summary = async (inspection: Inspection) => {
    const full = await deps.runtime.engine.inspect({ historyLimit: HISTORY });
    const lastError = full.context.lastError;
    return {
      revision: full.revision,
      state: full.state,
      wizardState: full.wizardState,
      scenario: full.scenario,
      accepts: full.accepts,
      reason: full.context.reason,
      lastError: lastError ? { message: lastError.message, code: lastError.code, when: timeOf(lastError.at) } : null,
      pendingEffect: full.pendingEffect ? { src: full.pendingEffect.src, startedAt: full.pendingEffect.startedAt } : null,
      current: await currentIds(),
      history: full.history.reverse().map((row) => ({
        revision: row.revision,
        at: row.at,
        when: timeOf(row.at),
        source: row.source,
        eventType: row.eventType,
        fromState: row.fromState,
        toState: row.toState,
        failure: failureOf(row),
      })),
      servedTls: deps.tls.fingerprintSha256,
      phase: phaseOf(inspection.state),
    };
  };

  router.get(PATHS.inspect, ...guard, async (req, res) => {
    const data = await summary(inspectionOf(res));
    const view = viewOf(req);
    const [compact, full] = await Promise.all([deps.graph.svg(data.current, 'compact'), deps.graph.svg(data.current, 'full')]);
    renderPage(deps, req, res, 'inspect', { title: 'Lifecycle', wide: true, data, view, svg: { compact, full }, home: homeFor(req, inspectionOf(res)) });
  });

  router.get(`${PATHS.inspect}/state.json`, ...guard, async (_req, res) => {
    res.json(await summary(inspectionOf(res)));
  });

  router.get(`${PATHS.inspect}/graph.svg`, ...guard, async (req, res) => {
    res.type('image/svg+xml').send(await deps.graph.svg(await currentIds(), viewOf(req)));
  });

  return router;
}

/** ?view=full or ?view=compact; the compact overview unless asked otherwise. */
function viewOf(req: Request): GraphView {
  const asked = req.query.view;
  return GRAPH_VIEWS.find((view) => view === asked) ?? 'compact';
}
