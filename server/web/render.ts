import type { Request, Response } from 'express';
import type { Inspection } from '../lifecycle-engine';
import { phaseOf } from './lifecycle-phase';
import { timeUntil, utcTime } from './time-text';
import { contextOf } from './request-context';
import type { WebDeps } from './web-deps';

/** The hidden field that binds a wizard form to the step and revision it was rendered for (stepAction checks it). */
export const FORM_STEP_FIELD = 'formStep';

/** "<wizard state>@<revision>", or null outside the wizard. */
export function formStepOf(inspection: Inspection | undefined): string | null {
  const step = inspection?.wizardState;
  return step && step !== 'WIZARD_COMPLETED' ? `${step}@${inspection.revision}` : null;
}

/** A form's state for its template: values to show again (never a secret), errors by field. */
export interface FormState {
  values?: Record<string, string>;
  errors?: Record<string, string>;
  /** The internal code of a field's error, shown small after its sentence. */
  errorCodes?: Record<string, string>;
  formError?: string | null;
  formErrorCode?: string | null;
}

/** Renders a page with what every page needs: the CSRF token for its forms, who is logged in. */
export function renderPage(deps: WebDeps, req: Request, res: Response, view: string, locals: Record<string, unknown> & FormState, status = 200): void {
  const session = contextOf(req).session;
  let html: string;
  try {
    // One object for the page, with no prototype (ejs's `with` finds no Object.prototype name in it).
    const page = Object.assign(Object.create(null) as Record<string, unknown>, {
      csrfToken: deps.csrf.token(req, res),
      user: session?.adminUsername ?? null,
      setupSession: session?.setupAuthorized ?? false,
      // The navigation offers only the pages that open in this phase (the others would redirect).
      phase: phaseOf((locals.inspection as Inspection | undefined)?.state ?? deps.watcher.current?.state ?? ''),
      path: req.path,
      values: {},
      errors: {},
      errorCodes: {},
      formError: null,
      formErrorCode: null,
      formStep: formStepOf(locals.inspection as Inspection | undefined),
      utcTime,
      timeUntil,
    });
    html = deps.views.page(view, Object.assign(page, locals), true);
  } catch (error) {
    // As res.render: the error page says what went wrong.
    req.next?.(error);
    return;
  }
  res.status(status).setHeader('Content-Type', 'text/html; charset=utf-8');
  res.send(html);
}

/** A form field's value from a urlencoded or multipart body, as text ('' when absent). */
export function field(req: Request, name: string): string {
  const body = req.body as Record<string, unknown> | undefined;
  const value = body && typeof body === 'object' ? body[name] : undefined;
  return typeof value === 'string' ? value : '';
}
