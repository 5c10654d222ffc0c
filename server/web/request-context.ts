import type { WebSessionRecord } from '../../db/repositories/web-session-repository';
import type { UploadedFile } from './multipart';

/** What the middleware learns about a request, for the handlers after it. */
export interface RequestContext {
  /** The session id from the cookie: random, anonymous unless `session` is set. Never logged. */
  sessionId: string;
  /** The privileged session (set-up code given, or an admin logged in), or null. */
  session: WebSessionRecord | null;
}

declare global {
  namespace Express {
    interface Request {
      keyward?: RequestContext;
      /** Files of a multipart form, in the upload area, by field name. */
      uploads?: Record<string, UploadedFile>;
    }
  }
}

export function contextOf(req: Express.Request): RequestContext {
  if (!req.keyward) throw new Error('the session middleware did not run for this route');
  return req.keyward;
}
