import { Router } from 'express';
import type { Request, Response } from 'express';
import type { Inspection } from '../../lifecycle-engine';
import { field, FormState, renderPage } from '../render';
import { failureOf, fieldFailure, formEvent, sendEvent } from '../web-events';
import type { WebDeps } from '../web-deps';
import { afterEvent, afterLastStep, stepAction, stepPage } from '../wizard-step';
import { PATHS } from '../wizard-paths';
import { checkNewPassword, PASSWORD_RULES } from './password-form';

/** Wizard: the backup password (HSM storage), demo data, and the first administrator. */
export function finishRoutes(deps: WebDeps, router: Router = Router()): Router {
  // ── backup password ──
  const backupStep = ['WIZARD_BACKUP_PASSWORD'];
  const renderBackup = (req: Request, res: Response, inspection: Inspection, form: FormState = {}, status = 200) =>
    renderPage(deps, req, res, 'setup-wizard/backup-password', { title: 'Backup password', inspection, rules: PASSWORD_RULES, ...form }, status);

  router.get(
    PATHS.backupPassword,
    stepPage(backupStep, (req, res, inspection) => renderBackup(req, res, inspection)),
  );

  router.post(
    PATHS.backupPassword,
    stepAction(backupStep, async (req, res, inspection) => {
      const problem = checkNewPassword(field(req, 'password'), field(req, 'passwordConfirm'), 'backup password');
      if (problem) return renderBackup(req, res, inspection, { errors: { [problem.field]: problem.message } }, 400);
      const { payload, secrets } = formEvent(req, 'SET_BACKUP_PASSWORD');
      const { result, after } = await sendEvent(deps, req, 'SET_BACKUP_PASSWORD', payload, secrets);
      const failure = failureOf(result, { mainField: 'password', fields: ['password', 'passwordConfirm'] });
      if (failure) return renderBackup(req, res, after ?? inspection, { ...fieldFailure(failure) }, failure.status);
      afterEvent(req, res, after, inspection);
    }),
  );

  // ── demo data ──
  const demoStep = ['WIZARD_DEMO_DATA'];
  router.get(
    PATHS.demoData,
    stepPage(demoStep, (req, res, inspection) => renderPage(deps, req, res, 'setup-wizard/demo-data', { title: 'Demo data', inspection })),
  );

  router.post(
    PATHS.demoData,
    stepAction(demoStep, async (req, res, inspection) => {
      const choice = field(req, 'choice');
      if (choice !== 'add' && choice !== 'skip')
        return renderPage(deps, req, res, 'setup-wizard/demo-data', { title: 'Demo data', inspection, errors: { choice: 'Choose whether to add demo data.' } }, 400);
      const { result, after } = await sendEvent(deps, req, choice === 'add' ? 'ADD_DEMO_DATA' : 'SKIP_DEMO_DATA', {});
      const failure = failureOf(result, { mainField: 'choice', fields: ['choice'] });
      if (failure) return renderPage(deps, req, res, 'setup-wizard/demo-data', { title: 'Demo data', inspection: after ?? inspection, ...fieldFailure(failure) }, failure.status);
      afterEvent(req, res, after, inspection);
    }),
  );

  // ── the first administrator ──
  const adminStep = ['WIZARD_CREATE_SUPER_USER'];
  const renderAdmin = (req: Request, res: Response, inspection: Inspection, form: FormState = {}, status = 200) =>
    renderPage(deps, req, res, 'setup-wizard/create-super-user', { title: 'Administrator', inspection, rules: PASSWORD_RULES, ...form }, status);

  router.get(
    PATHS.createSuperUser,
    stepPage(adminStep, (req, res, inspection) => renderAdmin(req, res, inspection)),
  );

  router.post(
    PATHS.createSuperUser,
    stepAction(adminStep, async (req, res, inspection) => {
      const username = field(req, 'username').trim();
      const values = { username };
      if (username === '') return renderAdmin(req, res, inspection, { values, errors: { username: 'Choose a user name.' } }, 400);
      const problem = checkNewPassword(field(req, 'password'), field(req, 'passwordConfirm'), 'admin password');
      if (problem) return renderAdmin(req, res, inspection, { values, errors: { [problem.field]: problem.message } }, 400);
      const { payload, secrets } = formEvent(req, 'CREATE_ADMIN');
      const { result, after } = await sendEvent(deps, req, 'CREATE_ADMIN', payload, secrets);
      const failure = failureOf(result, { mainField: 'username', fields: ['username', 'password', 'passwordConfirm'] });
      if (failure) return renderAdmin(req, res, after ?? inspection, { values, ...fieldFailure(failure) }, failure.status);
      await afterLastStep(deps, req, res, after, inspection);
    }),
  );

  return router;
}
