import type { Request, RequestHandler, Response } from 'express';
import type { Inspection } from '../lifecycle-engine';
import { homeFor, inspectionOf } from './access';
import { field, FORM_STEP_FIELD, formStepOf } from './render';
import { WebError } from './web-errors';
import { phaseOf } from './lifecycle-phase';
import type { WebDeps } from './web-deps';
import { hsmTypeOf, PATHS } from './wizard-paths';

type Handler = (req: Request, res: Response, inspection: Inspection) => Promise<void> | void;

function atStep(req: Request, inspection: Inspection, wizardStates: readonly string[]): boolean {
  if (!wizardStates.includes(inspection.wizardState ?? '')) return false;
  // /hsm-setup/<hsm_type>/: the type in the URL must be the storage chosen.
  const hsmType = req.params.hsmType;
  const chosen = hsmTypeOf(inspection.context.storageType);
  return hsmType === undefined || chosen === null || hsmType === chosen;
}

/** A step's page: shown while the machine is at that step; any other time, the current step's page. */
export function stepPage(wizardStates: readonly string[], render: Handler): RequestHandler {
  return async (req: Request, res: Response) => {
    const inspection = inspectionOf(res);
    if (!atStep(req, inspection, wizardStates)) return res.redirect(302, homeFor(req, inspection));
    await render(req, res, inspection);
  };
}

const STEP_TITLES: Record<string, string> = {
  WIZARD_SETUP_CRYPTO_STORAGE: 'Crypto storage',
  WIZARD_SETUP_HSM: 'HSM token',
  WIZARD_SETUP_MODE: 'Set-up mode',
  WIZARD_SELECT_TLS_SERVER_CREDENTIAL: 'TLS credential',
  WIZARD_TLS_SERVER_CREDENTIAL_APPLY: 'Apply TLS',
  WIZARD_BACKUP_PASSWORD: 'Backup password',
  WIZARD_RECOVERY_SHARES: 'Recovery shares',
  WIZARD_DEMO_DATA: 'Demo data',
  WIZARD_CREATE_SUPER_USER: 'Administrator',
  WIZARD_SETUP_HSM_AUTORESTORE: 'Auto-restore: HSM token',
  WIZARD_AUTO_RESTORE_PASSWORD: 'Auto-restore: backup password',
};

const titleOf = (wizardState: string | null | undefined) => (wizardState && STEP_TITLES[wizardState]) || 'another stage';

/**
 * A step's form: sent only while the machine is at the step it was rendered for. A form left open
 * in another tab after the lifecycle moved on (or came back to the step by another way) is refused
 * with a message and changes nothing.
 */
export function stepAction(wizardStates: readonly string[], handle: Handler): RequestHandler {
  return async (req: Request, res: Response) => {
    const inspection = inspectionOf(res);
    const posted = field(req, FORM_STEP_FIELD);
    const now = titleOf(inspection.wizardState);
    if (!atStep(req, inspection, wizardStates)) {
      const was = titleOf(posted.split('@')[0] || wizardStates[0]);
      throw new WebError('STEP_OVER', `This form was for “${was}”, but the set-up has moved on to “${now}” (perhaps in another tab or browser). Nothing was changed: continue on the current step.`);
    }
    // Same step, but reached again since the form was shown: it may not show what would be done now.
    if (posted !== '' && posted !== formStepOf(inspection)) {
      throw new WebError(
        'FORM_OUT_OF_DATE',
        `This “${now}” form was shown before the set-up changed (perhaps in another tab or browser). Nothing was changed: reload the page, check it and send it again.`,
      );
    }
    await handle(req, res, inspection);
  };
}

/**
 * After a set-up's or a recovery's last step: when it reached operation, this session may see the
 * summary (SessionService.passSummary), and goes there; otherwise as afterEvent.
 */
export async function afterLastStep(deps: WebDeps, req: Request, res: Response, after: Inspection | null, fallback: Inspection): Promise<void> {
  const completion = after?.context.lastCompletion;
  if (after && completion && phaseOf(after.state) === 'operational') {
    await deps.sessions.passSummary(req, res, completion.at);
    return res.redirect(303, PATHS.summary);
  }
  afterEvent(req, res, after, fallback);
}

/** Where to go after an event: the page of the state it led to, as the watcher has just read it. */
export function afterEvent(req: Request, res: Response, after: Inspection | null, fallback: Inspection): void {
  res.redirect(303, homeFor(req, after ?? fallback));
}
