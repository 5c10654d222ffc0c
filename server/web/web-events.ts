import type { Request } from 'express';
import { eventFromForm, LifecycleEventType } from '../../machines/events';
import type { Inspection, SendResult } from '../lifecycle-engine';
import { withLabels } from './field-labels';
import { field } from './render';
import { contextOf } from './request-context';
import type { WebDeps } from './web-deps';

export interface FormFailure {
  status: number;
  /** The form field to show the message beside. */
  field: string;
  message: string;
  /** The internal code, shown small beside the message (a detail for support, not the message). */
  code: string | null;
}

/** A failure as a form's state: its message beside its field, the code with it. */
export function fieldFailure(failure: FormFailure): { errors: Record<string, string>; errorCodes: Record<string, string> } {
  return { errors: { [failure.field]: failure.message }, errorCodes: failure.code ? { [failure.field]: failure.code } : {} };
}

/** Who sent an event, for the transition log: the web, and the administrator when there is one. */
export function sourceOf(req: Request): string {
  const username = contextOf(req).session?.adminUsername;
  return username ? `web:${username}`.slice(0, 64) : 'web';
}

/** The posted form read the event schema's way: its payload fields, and its secrets beside them. */
export function formEvent(req: Request, type: LifecycleEventType, names: Readonly<Record<string, string>> = {}) {
  return eventFromForm(type, (name) => field(req, name), names);
}

/**
 * The one way a page changes the lifecycle: one event to the engine. Afterwards the watcher reads the
 * lifecycle at once, so a new TLS credential is served before the browser follows the redirect.
 */
export async function sendEvent(
  deps: WebDeps,
  req: Request,
  type: string,
  payload: Record<string, unknown>,
  secrets: Record<string, string> = {},
  /** Shows what the effect hands out (recovery shares) before it is dropped. */
  onRevealed?: Parameters<WebDeps['runtime']['send']>[4],
): Promise<{ result: SendResult; after: Inspection | null }> {
  try {
    const result = await deps.work.track(deps.runtime.send(type, payload, secrets, sourceOf(req), onRevealed));
    deps.logger.info({ event: type, outcome: result.outcome, state: result.state, revision: result.revision, errorCode: result.error?.code ?? null }, 'lifecycle event from the web');
    return { result, after: await deps.watcher.poll() };
  } finally {
    for (const name of Object.keys(secrets)) secrets[name] = '';
  }
}

/**
 * What went wrong, for the form: the field the error names (mapped to the form's own field names),
 * else the form's main field; the status says what kind of failure it was.
 */
export function failureOf(result: SendResult, form: { mainField: string; fields: readonly string[]; fieldMap?: Record<string, string> }): FormFailure | null {
  if (result.outcome === 'applied') return null;
  const named = result.error?.field ? (form.fieldMap?.[result.error.field] ?? result.error.field) : null;
  const field = named && form.fields.includes(named) ? named : form.mainField;
  // Field names in the message become the form's labels ("modulePath is required" → "PKCS#11 module path is required").
  const message = withLabels(result.error?.message ?? result.message ?? `the event was ${result.outcome}`);
  const code = result.error?.code ?? null;
  switch (result.outcome) {
    case 'refused':
      return { status: result.error?.code === 'INVALID_EVENT' ? 400 : 409, field, message, code };
    case 'rejected':
      return { status: result.error?.code === 'LOCKED_OUT' ? 429 : 400, field, message, code };
    default:
      return { status: 409, field, message, code };
  }
}
