import { Router } from 'express';
import { renderPage } from '../render';
import { failureOf, sendEvent } from '../web-events';
import type { WebDeps } from '../web-deps';
import { afterEvent, stepAction, stepPage } from '../wizard-step';
import { PATHS } from '../wizard-paths';

/** Wizard: set up fresh, or restore a backup (offered only once the machine accepts RESTORE_BACKUP). */
export function setupModeRoutes(deps: WebDeps): Router {
  const router = Router();
  const step = ['WIZARD_SETUP_MODE'];

  router.get(
    PATHS.setupMode,
    stepPage(step, (req, res, inspection) => {
      renderPage(deps, req, res, 'setup-wizard/setup-mode', { title: 'Set-up mode', inspection, restoreOffered: inspection.accepts.includes('RESTORE_BACKUP') });
    }),
  );

  router.post(
    PATHS.setupMode,
    stepAction(step, async (req, res, inspection) => {
      const { result, after } = await sendEvent(deps, req, 'CHOOSE_FRESH', {});
      const failure = failureOf(result, { mainField: 'mode', fields: ['mode'] });
      if (failure) {
        const current = after ?? inspection;
        return renderPage(deps, req, res, 'setup-wizard/setup-mode', { title: 'Set-up mode', inspection: current, restoreOffered: current.accepts.includes('RESTORE_BACKUP'), errors: { mode: failure.message } }, failure.status);
      }
      afterEvent(req, res, after, inspection);
    }),
  );

  /*
   * ─── RESTORE_BACKUP: the backup upload goes here (the backup issue adds the event) ───────────────
   * POST PATHS.restore ('/setup-wizard/restore/'), multipart like the TLS import: the archive as a
   * file field, its passphrase as a password field. Write the archive with deps.uploads.with(...)
   * (size limit: raise MULTIPART_LIMITS.maxFileBytes and the express.raw limit in app.ts for this
   * route only), then
   *   sendEvent(deps, req, 'RESTORE_BACKUP', { path }, { passphrase })
   * with the payload and secret names the event defines, and handle the result as the POST above.
   * views/setup-wizard/setup-mode.ejs already renders the form when `restoreOffered` is true.
   * ────────────────────────────────────────────────────────────────────────────────────────────────
   */

  return router;
}
