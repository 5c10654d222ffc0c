import { Router } from 'express';
import type { Request, Response } from 'express';
import type { Inspection } from '../../lifecycle-engine';
import { isSetupPhase, phaseOf } from '../lifecycle-phase';
import { field, FormState, renderPage } from '../render';
import { failureOf, sendEvent } from '../web-events';
import type { WebDeps } from '../web-deps';
import { afterEvent, stepAction, stepPage } from '../wizard-step';
import { PATHS } from '../wizard-paths';

/** Wizard: set up fresh, or restore a backup archive (offered when the machine accepts RESTORE_BACKUP). */
export function setupModeRoutes(deps: WebDeps, router: Router = Router()): Router {
  const step = ['WIZARD_SETUP_MODE'];

  const renderMode = (req: Request, res: Response, inspection: Inspection, form: FormState = {}, status = 200) =>
    renderPage(
      deps,
      req,
      res,
      'setup-wizard/setup-mode',
      { title: 'Set-up mode', inspection, restoreOffered: inspection.accepts.includes('RESTORE_BACKUP'), maxMiB: deps.config.restoreUploadBytes / 1048576, ...form },
      status,
    );

  router.get(
    PATHS.setupMode,
    stepPage(step, (req, res, inspection) => renderMode(req, res, inspection)),
  );

  router.post(
    PATHS.setupMode,
    stepAction(step, async (req, res, inspection) => {
      const { result, after } = await sendEvent(deps, req, 'CHOOSE_FRESH', {});
      const failure = failureOf(result, { mainField: 'mode', fields: ['mode'] });
      if (failure) return renderMode(req, res, after ?? inspection, { errors: { mode: failure.message } }, failure.status);
      afterEvent(req, res, after, inspection);
    }),
  );

  // Restore a backup archive (RESTORE_BACKUP): the archive replaces this store (which goes to
  // quarantine) and BOOT decides where the restored lifecycle goes: operational, the wizard, or
  // auto-restore on a new host (its backup password, and a token if its was lost).
  router.post(
    PATHS.restore,
    stepAction(step, async (req, res, inspection) => {
      const archive = req.uploads?.archive;
      const passphrase = field(req, 'passphrase');
      const errors: Record<string, string> = {};
      if (!archive) errors.archive = 'Choose the backup archive (made by keyward backup).';
      if (passphrase === '') errors.passphrase = 'Enter the archive passphrase.';
      if (!archive || passphrase === '') return renderMode(req, res, inspection, { errors }, 400);
      const outcome = await deps.uploads.with([archive], async ([path], describe) => ({ ...(await sendEvent(deps, req, 'RESTORE_BACKUP', { path }, { passphrase })), describe }));
      const failure = failureOf(outcome.result, { mainField: 'archive', fields: ['archive', 'passphrase'] });
      if (failure) {
        const field = outcome.result.error?.code === 'WRONG_PASSPHRASE' ? 'passphrase' : failure.field;
        return renderMode(req, res, outcome.after ?? inspection, { errors: { [field]: outcome.describe(failure.message) } }, failure.status);
      }
      // The restored store holds the sessions of the installation it came from: none of them stays
      // valid here. This browser, which gave the set-up code, continues if a set-up follows (the
      // wizard, or auto-restore); if the restored lifecycle is operational, its administrator logs in.
      await deps.sessions.endAll();
      const after = (await deps.watcher.poll()) ?? outcome.after;
      if (after && isSetupPhase(phaseOf(after.state))) await deps.sessions.grant(req, res, { setup: true });
      else await deps.sessions.end(req, res);
      deps.logger.info({ state: after?.state ?? null }, 'a backup archive was restored from the web');
      afterEvent(req, res, after, inspection);
    }),
  );

  return router;
}
