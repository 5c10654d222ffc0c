import { Router } from 'express';
import type { Request, Response } from 'express';
import { tagsOfState } from '../../../machines/state-names';
import type { Inspection } from '../../lifecycle-engine';
import { homeFor, inspectionOf, isAdmin, readLifecycle } from '../access';
import { describeScenario } from '../scenario-text';
import { failureOf, sendEvent } from '../web-events';
import { phaseOf } from '../lifecycle-phase';
import { field, FormState, renderPage } from '../render';
import type { WebDeps } from '../web-deps';
import { PATHS } from '../wizard-paths';

/** "/" sends each visitor where the lifecycle and their session put them; /lifecycle explains a stop. */
export function homeRoutes(deps: WebDeps, router: Router = Router()): Router {
  router.get('/', readLifecycle(deps), (req, res) => {
    res.redirect(302, homeFor(req, inspectionOf(res)));
  });

  // The wizard's root is no step of its own: the current one.
  router.get('/setup-wizard/', (req, res) => {
    res.redirect(302, homeFor(req, inspectionOf(res)));
  });

  const renderLifecycle = (req: Request, res: Response, inspection: Inspection, form: FormState = {}, status = 200) =>
    // The scenario and the reason (which can name the token and its error) are for an administrator.
    renderPage(
      deps,
      req,
      res,
      'lifecycle',
      {
        title: 'keyward is not available',
        inspection,
        details: isAdmin(req),
        scenarioSentence: describeScenario(inspection.scenario),
        outage: tagsOfState(inspection.state).has('outage'),
        retry: { nextAt: deps.bootRetry.nextAt, everySeconds: deps.runtime.config.outageRetrySeconds },
        mayDeclareLost: inspection.accepts.includes('DECLARE_TOKEN_LOST'),
        ...form,
      },
      status,
    );

  router.get(PATHS.lifecycle, readLifecycle(deps), (req, res) => {
    const inspection = inspectionOf(res);
    if (phaseOf(inspection.state) !== 'unavailable') return res.redirect(302, homeFor(req, inspection));
    renderLifecycle(req, res, inspection);
  });

  // An HSM out of reach that will not come back: an administrator declares it lost, and auto-restore sets up a new token.
  router.post(PATHS.declareTokenLost, readLifecycle(deps), async (req, res) => {
    const inspection = inspectionOf(res);
    if (!isAdmin(req)) return res.redirect(303, `${PATHS.login}?next=${PATHS.lifecycle}`);
    if (phaseOf(inspection.state) !== 'unavailable') return res.redirect(303, homeFor(req, inspection));
    if (field(req, 'confirm') !== 'lost') return renderLifecycle(req, res, inspection, { errors: { confirm: 'Tick the box to confirm that the token is lost.' } }, 400);
    const { result, after } = await sendEvent(deps, req, 'DECLARE_TOKEN_LOST', {});
    const failure = failureOf(result, { mainField: 'confirm', fields: ['confirm'] });
    if (failure) return renderLifecycle(req, res, after ?? inspection, { errors: { confirm: failure.message } }, failure.status);
    res.redirect(303, homeFor(req, after ?? inspection));
  });

  return router;
}
