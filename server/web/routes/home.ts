import { Router } from 'express';
import { homeFor, inspectionOf, isAdmin, readLifecycle } from '../access';
import { phaseOf } from '../lifecycle-phase';
import { renderPage } from '../render';
import type { WebDeps } from '../web-deps';
import { PATHS } from '../wizard-paths';

/** "/" sends each visitor where the lifecycle and their session put them; /lifecycle explains a stop. */
export function homeRoutes(deps: WebDeps): Router {
  const router = Router();

  router.get('/', readLifecycle(deps), (req, res) => {
    res.redirect(302, homeFor(req, inspectionOf(res)));
  });

  // The wizard's root is no step of its own: the current one.
  router.get('/setup-wizard/', (req, res) => {
    res.redirect(302, homeFor(req, inspectionOf(res)));
  });

  router.get(PATHS.lifecycle, readLifecycle(deps), (req, res) => {
    const inspection = inspectionOf(res);
    if (phaseOf(inspection.state) !== 'unavailable') return res.redirect(302, homeFor(req, inspection));
    // The scenario and the reason (which can name the token and its error) are for an administrator.
    renderPage(deps, req, res, 'lifecycle', { title: 'keyward is not available', inspection, details: isAdmin(req) });
  });

  return router;
}
