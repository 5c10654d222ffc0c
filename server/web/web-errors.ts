import { randomBytes } from 'node:crypto';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { LifecycleBusyError } from '../lifecycle-engine';
import type { Logger } from './logger';
import { MultipartError } from './multipart';

/** An HTTP failure whose message is safe to show: it names no secret and no internal detail. */
export class WebError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    message: string,
  ) {
    super(message);
    this.name = 'WebError';
  }
}

export class NotFoundError extends WebError {
  constructor(message = 'There is no page at this address.') {
    super(404, 'Not found', message);
  }
}

export class TooManyAttemptsError extends WebError {
  constructor(
    what: string,
    readonly retryAfterSeconds: number,
  ) {
    super(429, 'Too many attempts', `Too many failed ${what} attempts from this address: wait ${Math.max(1, Math.ceil(retryAfterSeconds / 60))} minute(s) and try again.`);
  }
}

/** What may be logged of an unexpected error: driver messages can quote a statement, so only its last words. */
export function loggableError(error: unknown): { name: string; code?: string; message: string } {
  if (!(error instanceof Error)) return { name: typeof error, message: 'a non-Error value was thrown' };
  const code = (error as { code?: unknown }).code;
  return { name: error.name, ...(typeof code === 'string' ? { code } : {}), message: error.message.split(' - ').pop()!.slice(0, 300) };
}

function classify(error: unknown): WebError | null {
  if (error instanceof WebError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const status = (error as { status?: unknown } | null)?.status;
  if (code === 'EBADCSRFTOKEN') {
    return new WebError(403, 'Form expired', 'This form was not sent by this page, or it has expired (for example after you logged in or out). Nothing was changed: go back, reload the page and send it again.');
  }
  if (error instanceof MultipartError) return new WebError(400, 'Bad upload', error.message);
  if (error instanceof LifecycleBusyError) return new WebError(409, 'Busy', 'keyward is still carrying out the previous step. Nothing was changed: wait a moment and try again.');
  if (status === 413) return new WebError(413, 'Too large', 'The form is larger than keyward accepts. Nothing was changed.');
  if (status === 404) return new NotFoundError();
  if (typeof status === 'number' && status >= 400 && status < 500) return new WebError(status, 'Bad request', 'The request could not be read. Nothing was changed.');
  return null;
}

export const notFound: RequestHandler = (_req, _res, next) => next(new NotFoundError());

/** Renders every failure as a page; an unexpected one is logged with an incident id and shown only by that id. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error, req, res, _next) => {
    let known = classify(error);
    if (!known) {
      const incident = randomBytes(6).toString('hex');
      logger.error({ incident, method: req.method, path: req.path, error: loggableError(error) }, 'request failed');
      known = new WebError(500, 'Internal error', `keyward could not complete this request (incident ${incident} in its log).`);
    } else if (known.status >= 500) {
      logger.error({ method: req.method, path: req.path, error: loggableError(error) }, 'request failed');
    }
    if (res.headersSent) return;
    if (known instanceof TooManyAttemptsError) res.set('Retry-After', String(known.retryAfterSeconds));
    res.set('Cache-Control', 'no-store');
    res.status(known.status);
    if (req.accepts(['html', 'json']) === 'json') {
      res.json({ error: { status: known.status, title: known.title, message: known.message } });
      return;
    }
    res.render('error', { title: known.title, status: known.status, message: known.message, csrfToken: '', nav: null });
  };
}
