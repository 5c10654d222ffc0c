import { Router } from 'express';
import { homeFor, inspectionOf, maySetUp } from '../access';
import { phaseOf } from '../lifecycle-phase';
import { field, renderPage } from '../render';
import { SetupCodeError } from '../setup-code';
import type { WebDeps } from '../web-deps';
import { PATHS } from '../wizard-paths';

/**
 * The set-up code page (keyward's, beside Trustpoint's wizard paths): the wizard and auto-restore
 * open only to the session that presents the code a node printed on its console (any node accepts it).
 */
export function unlockRoutes(deps: WebDeps, router: Router = Router()): Router {
  router.get(PATHS.unlock, async (req, res) => {
    const inspection = inspectionOf(res);
    if (maySetUp(req, phaseOf(inspection.state))) return res.redirect(302, homeFor(req, inspection));
    renderPage(deps, req, res, 'setup-wizard/unlock', { title: 'Unlock the set-up', inspection, used: await deps.setupCode.used() });
  });

  router.post(PATHS.unlock, deps.rateLimits.setupCode, async (req, res) => {
    const inspection = inspectionOf(res);
    try {
      await deps.setupCode.redeem(field(req, 'code'));
    } catch (error) {
      if (!(error instanceof SetupCodeError)) throw error;
      deps.logger.warn({ reason: error.reason }, 'set-up code refused');
      return renderPage(
        deps,
        req,
        res,
        'setup-wizard/unlock',
        { title: 'Unlock the set-up', inspection, used: await deps.setupCode.used(), errors: { code: error.message } },
        error.reason === 'used' ? 403 : 400,
      );
    }
    await deps.sessions.grant(req, res, { setup: true });
    deps.logger.info('set-up code accepted: the wizard is unlocked for one browser session');
    res.redirect(303, homeFor(req, inspection));
  });

  return router;
}
