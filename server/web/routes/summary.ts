import { Router } from 'express';
import { homeFor, inspectionOf, isAdmin, readLifecycle } from '../access';
import { custodyFacts } from '../custody-facts';
import { phaseOf } from '../lifecycle-phase';
import { renderPage } from '../render';
import { contextOf } from '../request-context';
import type { WebDeps } from '../web-deps';
import { PATHS } from '../wizard-paths';

/**
 * The summary of the last set-up or recovery: the keys and the certificate served (read live), what
 * to keep offline, and after a recovery the values checked and the CAs deactivated (recorded by the
 * machine). It holds no secret but names the token and its keys: the session that finished the step
 * sees it (SessionService.passSummary), and any logged-in administrator.
 */
export function summaryRoutes(deps: WebDeps, router: Router = Router()): Router {
  router.get(PATHS.summary, readLifecycle(deps), async (req, res) => {
    const inspection = inspectionOf(res);
    const completion = inspection.context.lastCompletion ?? null;
    if (phaseOf(inspection.state) !== 'operational' || completion === null) return res.redirect(302, homeFor(req, inspection));
    const finishedHere = contextOf(req).session?.summaryOf === completion.at;
    if (!isAdmin(req) && !finishedHere) return res.redirect(302, `${PATHS.login}?next=${PATHS.summary}`);
    const { material: _material, ...facts } = await custodyFacts(deps);
    renderPage(deps, req, res, 'summary', {
      title: completion.kind === 'setup' ? 'Set-up complete' : 'Recovery complete',
      inspection,
      completion,
      ...facts,
      loggedIn: isAdmin(req),
    });
  });

  return router;
}
