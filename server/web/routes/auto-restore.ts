import { Router } from 'express';
import type { Request, Response } from 'express';
import type { Inspection } from '../../lifecycle-engine';
import { field, FormState, renderPage } from '../render';
import { failureOf, fieldFailure, formEvent, sendEvent } from '../web-events';
import type { WebDeps } from '../web-deps';
import { afterLastStep, stepAction, stepPage } from '../wizard-step';
import { PATHS } from '../wizard-paths';
import { hsmSetupRoutes } from './wizard-storage';

/**
 * Auto-restore after a lost token or KEK: a new token if the old one is gone, then the backup
 * password. A wrong password changes nothing but the machine's persisted attempt counter; after three
 * the machine locks attempts out for a growing time, across restarts.
 */
export function autoRestoreRoutes(deps: WebDeps): Router {
  const router = Router();
  hsmSetupRoutes(deps, router, PATHS.autoRestoreHsmSetup, 'WIZARD_SETUP_HSM_AUTORESTORE', true);

  const step = ['WIZARD_AUTO_RESTORE_PASSWORD'];
  const render = (req: Request, res: Response, inspection: Inspection, form: FormState = {}, status = 200) => {
    const { passwordFailures, lockedUntil } = inspection.context;
    const locked = lockedUntil !== null && Date.parse(lockedUntil) > Date.now() ? lockedUntil : null;
    renderPage(deps, req, res, 'setup-wizard/auto-restore-password', { title: 'Auto-restore: backup password', inspection, passwordFailures, lockedUntil: locked, ...form }, status);
  };

  router.get(
    PATHS.autoRestorePassword,
    stepPage(step, (req, res, inspection) => render(req, res, inspection)),
  );

  router.post(
    PATHS.autoRestorePassword,
    deps.rateLimits.backupPassword,
    stepAction(step, async (req, res, inspection) => {
      const password = field(req, 'password');
      if (password === '') return render(req, res, inspection, { errors: { password: 'Enter the backup password set during the wizard.' } }, 400);
      const { payload, secrets } = formEvent(req, 'SUBMIT_BACKUP_PASSWORD');
      const { result, after } = await sendEvent(deps, req, 'SUBMIT_BACKUP_PASSWORD', payload, secrets);
      const failure = failureOf(result, { mainField: 'password', fields: ['password'] });
      if (failure) return render(req, res, after ?? inspection, { ...fieldFailure(failure) }, failure.status);
      await afterLastStep(deps, req, res, after, inspection);
    }),
  );

  return router;
}
