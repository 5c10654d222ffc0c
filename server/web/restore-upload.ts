import type { NextFunction, Request, Response } from 'express';
import { contextOf } from './request-context';
import { WebError } from './web-errors';

/**
 * The backup upload is larger than any other form (an archive of the whole store), so it gets its
 * own body limit — and the body is read only for the session that gave this start-up's set-up code
 * (RESTORE_BACKUP exists only in the wizard, where nobody else may act), so that nobody else can
 * make keyward store tens of megabytes, let alone reach the archive's key derivation.
 */
export function restoreUploadGate(req: Request, _res: Response, next: NextFunction): void {
  if (req.method !== 'POST' || !req.is('multipart/form-data')) return next();
  if (!contextOf(req).session?.setupAuthorized) return next(new WebError('SETUP_LOCKED'));
  next();
}
