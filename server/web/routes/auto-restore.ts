import { hostname } from 'node:os';
import { Router } from 'express';
import type { Request, Response } from 'express';
import { decodeShare } from '../../../crypto/recovery-shares';
import { isKeyCustodyError } from '../../../errors/key-custody-error';
import type { Inspection } from '../../lifecycle-engine';
import { field, FormState, renderPage } from '../render';
import { failureOf, fieldFailure, formEvent, sendEvent } from '../web-events';
import type { WebDeps } from '../web-deps';
import { afterLastStep, stepAction, stepPage } from '../wizard-step';
import { PATHS } from '../wizard-paths';
import { sentence } from './recovery-shares';
import { hsmSetupRoutes } from './wizard-storage';

/**
 * Auto-restore after a lost token or KEK: a new token if the old one is gone, then the backup
 * password. A wrong password changes nothing but the machine's persisted attempt counter; after three
 * the machine locks attempts out for a growing time, across restarts.
 */
export function autoRestoreRoutes(deps: WebDeps, router: Router = Router()): Router {
  hsmSetupRoutes(deps, router, PATHS.autoRestoreHsmSetup, 'WIZARD_SETUP_HSM_AUTORESTORE', true);

  const step = ['WIZARD_AUTO_RESTORE_PASSWORD'];
  const render = async (req: Request, res: Response, inspection: Inspection, form: FormState & { form?: string } = {}, status = 200) => {
    const { passwordFailures, lockedUntil } = inspection.context;
    const locked = lockedUntil !== null && Date.parse(lockedUntil) > Date.now() ? lockedUntil : null;
    // Recovery shares typed in so far live in this process only: the page counts them from here.
    const set = await deps.runtime.store.keyMaterial.recoveryShareSet();
    const collected = deps.runtime.custody.recoveryShares.status();
    const shares = set && {
      shareSetId: set.shareSetId,
      threshold: set.threshold,
      total: set.shares,
      indexes: collected?.shareSetId === set.shareSetId ? collected.indexes : [],
      expiresAt: collected?.shareSetId === set.shareSetId ? collected.expiresAt : null,
      ttlMinutes: Math.round(deps.runtime.custody.recoveryShares.ttlMs / 60_000),
      node: hostname(),
    };
    const entered = typeof req.query.share === 'string' && /^\d{1,2}$/.test(req.query.share) ? Number(req.query.share) : null;
    renderPage(
      deps,
      req,
      res,
      'setup-wizard/auto-restore-password',
      { title: 'Auto-restore: backup password', inspection, passwordFailures, lockedUntil: locked, shares, entered, form: null, ...form },
      status,
    );
  };

  router.get(
    PATHS.autoRestorePassword,
    stepPage(step, async (req, res, inspection) => render(req, res, inspection)),
  );

  router.post(
    PATHS.autoRestorePassword,
    deps.rateLimits.backupPassword,
    stepAction(step, async (req, res, inspection) => {
      const password = field(req, 'password');
      if (password === '') return render(req, res, inspection, { form: 'password', errors: { password: 'Enter the backup password set during the wizard.' } }, 400);
      const { payload, secrets } = formEvent(req, 'SUBMIT_BACKUP_PASSWORD');
      const { result, after } = await sendEvent(deps, req, 'SUBMIT_BACKUP_PASSWORD', payload, secrets);
      const failure = failureOf(result, { mainField: 'password', fields: ['password'] });
      if (failure) return render(req, res, after ?? inspection, { form: 'password', ...fieldFailure(failure) }, failure.status);
      await afterLastStep(deps, req, res, after, inspection);
    }),
  );

  // One recovery share per post (each holder types their own, in any browser); K of them recover.
  router.post(
    `${PATHS.autoRestorePassword}share/`,
    deps.rateLimits.backupPassword,
    stepAction(step, async (req, res, inspection) => {
      const typed = field(req, 'share');
      // A typo is refused here, before the event: it is no wrong share and counts toward nothing.
      let index: number;
      try {
        const share = decodeShare(typed);
        index = share.index;
        share.shamir.fill(0);
      } catch (error) {
        if (!isKeyCustodyError(error, 'RECOVERY_SHARE_INVALID')) throw error;
        return render(req, res, inspection, { form: 'share', errors: { share: sentence(error.message) } }, 400);
      }
      const { result, after } = await sendEvent(deps, req, 'SUBMIT_RECOVERY_SHARE', {}, { share: typed });
      const failure = failureOf(result, { mainField: 'share', fields: ['share'] });
      if (failure) return render(req, res, after ?? inspection, { form: 'share', errors: { share: sentence(failure.message) } }, failure.status);
      if (after?.wizardState === 'WIZARD_AUTO_RESTORE_PASSWORD') return res.redirect(303, `${PATHS.autoRestorePassword}?share=${index}`);
      await afterLastStep(deps, req, res, after, inspection);
    }),
  );

  return router;
}
