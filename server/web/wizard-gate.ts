import type { RequestHandler } from 'express';
import { homeFor, inspectionOf, maySetUp, readLifecycle } from './access';
import { phaseOf } from './lifecycle-phase';
import { NotFoundError, WebError } from './web-errors';
import type { WebDeps } from './web-deps';
import { PATHS } from './wizard-paths';

const isRead = (method: string) => method === 'GET' || method === 'HEAD';

/**
 * In front of every /setup-wizard/ URL. Once the wizard is complete (and no auto-restore runs) it is
 * closed: a page view goes home, anything else is 404. While keyward is booting or stopped it shows
 * why. Otherwise only a session that may set up passes; others are sent to the set-up code page.
 */
export function wizardGate(deps: WebDeps): RequestHandler[] {
  return [
    readLifecycle(deps),
    (req, res, next) => {
      const inspection = inspectionOf(res);
      const phase = phaseOf(inspection.state);
      if (phase === 'operational') {
        if (isRead(req.method)) return res.redirect(302, homeFor(req, inspection));
        return next(new NotFoundError('The set-up wizard is closed: keyward is set up.'));
      }
      if (phase === 'unavailable') {
        if (isRead(req.method)) return res.redirect(302, PATHS.lifecycle);
        return next(new WebError('NOT_IN_SETUP', `keyward is not in its set-up now (state ${inspection.state}); nothing was changed.`));
      }
      if (`/setup-wizard${req.path}`.replace(/\/?$/, '/') === PATHS.unlock) return next();
      if (!maySetUp(req, phase)) {
        if (isRead(req.method)) return res.redirect(302, PATHS.unlock);
        return next(new WebError('SETUP_LOCKED'));
      }
      next();
    },
  ];
}
