import { randomBytes } from 'node:crypto';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ERRORS, ErrorCode, KeywardError } from '../../errors/keyward-error';
import type { Logger } from './logger';
import { MultipartError } from './multipart';

/**
 * A refusal of the web itself. Its status and title come from the error table; its message is a
 * plain sentence safe to show (no secret, no internal detail), the table's unless it has its own.
 */
export class WebError extends KeywardError {
  constructor(code: ErrorCode, message?: string) {
    super(code, message);
    this.name = 'WebError';
  }
}

export class NotFoundError extends WebError {
  constructor(message?: string) {
    super('NOT_FOUND', message);
  }
}

export class TooManyAttemptsError extends WebError {
  constructor(
    what: string,
    readonly retryAfterSeconds: number,
  ) {
    super('TOO_MANY_ATTEMPTS', `Too many failed ${what} attempts from this address: wait ${Math.max(1, Math.ceil(retryAfterSeconds / 60))} minute(s) and try again.`);
  }
}

/** What may be logged of an unexpected error: driver messages can quote a statement, so only its last words. */
export function loggableError(error: unknown): { name: string; code?: string; message: string } {
  if (!(error instanceof Error)) return { name: typeof error, message: 'a non-Error value was thrown' };
  const code = (error as { code?: unknown }).code;
  return { name: error.name, ...(typeof code === 'string' ? { code } : {}), message: error.message.split(' - ').pop()!.slice(0, 300) };
}

interface Shown {
  code: ErrorCode;
  status: number;
  title: string;
  message: string;
}

/** Errors written for the web page show their own message; any other KeywardError shows its code's sentence. */
const ownMessage = (error: KeywardError): boolean => error instanceof WebError || error instanceof MultipartError;

function classify(error: unknown): Shown | null {
  const status = (error as { status?: unknown } | null)?.status;
  const known =
    error instanceof KeywardError
      ? error
      : (error as { code?: unknown } | null)?.code === 'EBADCSRFTOKEN'
        ? new WebError('FORM_EXPIRED')
        : status === 413
          ? new WebError('BODY_TOO_LARGE')
          : status === 404
            ? new NotFoundError()
            : typeof status === 'number' && status >= 400 && status < 500
              ? new WebError('BAD_REQUEST')
              : null;
  if (!known) return null;
  const { title } = known.entry;
  return { code: known.code, status: known.status, title, message: ownMessage(known) ? known.message : known.entry.message };
}

export const notFound: RequestHandler = (_req, _res, next) => next(new NotFoundError());

/** Renders every failure as a page; an unexpected one is logged with an incident id and shown only by that id. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error, req, res, _next) => {
    let known = classify(error);
    if (!known || known.status >= 500) {
      // A failure of keyward's own: the page shows an incident id; the log holds what may be logged of it.
      const incident = randomBytes(6).toString('hex');
      logger.error({ incident, method: req.method, path: req.path, error: loggableError(error) }, 'request failed');
      const { code, status, title, message } = known ?? { code: 'INTERNAL' as const, ...ERRORS.INTERNAL };
      known = { code, status, title, message: `${message.replace(/\.$/, '')} (incident ${incident} in its log).` };
    }
    if (res.headersSent) return;
    if (error instanceof TooManyAttemptsError) res.set('Retry-After', String(error.retryAfterSeconds));
    res.set('Cache-Control', 'no-store');
    res.status(known.status);
    if (req.accepts(['html', 'json']) === 'json') {
      res.json({ error: { status: known.status, code: known.code, title: known.title, message: known.message } });
      return;
    }
    res.render('error', { title: known.title, status: known.status, code: known.code, message: known.message, csrfToken: '', nav: null });
  };
}
