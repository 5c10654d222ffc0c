import type { Request, RequestHandler, Response } from 'express';
import type { Inspection } from '../lifecycle-engine';
import { homeFor, inspectionOf } from './access';
import { hsmTypeOf } from './wizard-paths';

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

/**
 * A step's form: sent only while the machine is at that step. A form left open in another tab
 * after the lifecycle moved on changes nothing and lands on the current step's page.
 */
export function stepAction(wizardStates: readonly string[], handle: Handler): RequestHandler {
  return async (req: Request, res: Response) => {
    const inspection = inspectionOf(res);
    if (!atStep(req, inspection, wizardStates)) return res.redirect(303, homeFor(req, inspection));
    await handle(req, res, inspection);
  };
}

/** Where to go after an event: the page of the state it led to, as the watcher has just read it. */
export function afterEvent(req: Request, res: Response, after: Inspection | null, fallback: Inspection): void {
  res.redirect(303, homeFor(req, after ?? fallback));
}
