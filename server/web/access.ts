import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Inspection } from '../lifecycle-engine';
import { isSetupPhase, Phase, phaseOf } from './lifecycle-phase';
import { contextOf } from './request-context';
import type { WebDeps } from './web-deps';
import { PATHS, pathOfWizardState } from './wizard-paths';

/**
 * Who may do what. The lifecycle decides which door is open; the session decides who may pass it:
 *   wizard        the session that presented this start-up's set-up code
 *   auto-restore  that, or a logged-in administrator
 *   operational   a logged-in administrator only; the wizard is closed
 */
export function isAdmin(req: Request): boolean {
  return contextOf(req).session?.adminUserId != null;
}

export function maySetUp(req: Request, phase: Phase): boolean {
  const session = contextOf(req).session;
  if (!session) return false;
  if (phase === 'wizard') return session.setupAuthorized;
  if (phase === 'autoRestore') return session.setupAuthorized || session.adminUserId !== null;
  return false;
}

/** Where this visitor belongs now. */
export function homeFor(req: Request, inspection: Inspection): string {
  const phase = phaseOf(inspection.state);
  if (phase === 'operational') return isAdmin(req) ? PATHS.status : PATHS.login;
  if (isSetupPhase(phase)) return maySetUp(req, phase) ? (pathOfWizardState(inspection.wizardState, inspection.context.storageType) ?? PATHS.lifecycle) : PATHS.unlock;
  return PATHS.lifecycle;
}

export function inspectionOf(res: Response): Inspection {
  const inspection = res.locals.inspection as Inspection | undefined;
  if (!inspection) throw new Error('the route ran without reading the lifecycle first');
  return inspection;
}

/** Reads the lifecycle fresh for this request (another process may have moved it). */
export function readLifecycle(deps: WebDeps): RequestHandler {
  return async (_req: Request, res: Response, next: NextFunction) => {
    res.locals.inspection = await deps.runtime.engine.inspect({ historyLimit: 0 });
    next();
  };
}

/**
 * The watcher's last reading (at most one interval old, and re-read at once after this process's
 * events) while the database answers; else a fresh one. For pages that need only the phase: the
 * wizard's pages read fresh, because there the step itself must be exact.
 */
export function recentLifecycle(deps: WebDeps): RequestHandler {
  return async (_req: Request, res: Response, next: NextFunction) => {
    const recent = deps.watcher.healthy ? deps.watcher.current : null;
    res.locals.inspection = recent ?? (await deps.runtime.engine.inspect({ historyLimit: 0 }));
    next();
  };
}

const isRead = (req: Request) => req.method === 'GET' || req.method === 'HEAD';

/** A safe place to return to after the login: a local path only. */
export function localPath(value: unknown): string | null {
  if (typeof value !== 'string' || !value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\') || value.length > 200) return null;
  return /^[A-Za-z0-9/_.~%-]*$/.test(value) ? value : null;
}

/**
 * The operations pages: an administrator, while the lifecycle is operational. Without a login the
 * visitor is sent to the login page; in any other phase, to where the lifecycle is.
 */
export function requireAdmin(deps: WebDeps): RequestHandler[] {
  return [
    recentLifecycle(deps),
    (req, res, next) => {
      const inspection = inspectionOf(res);
      if (!isAdmin(req)) {
        const phase = phaseOf(inspection.state);
        if (phase !== 'operational' && phase !== 'unavailable') return res.redirect(303, homeFor(req, inspection));
        return res.redirect(isRead(req) ? 302 : 303, isRead(req) ? `${PATHS.login}?next=${encodeURIComponent(req.originalUrl.split('?')[0]!)}` : PATHS.login);
      }
      if (phaseOf(inspection.state) !== 'operational') return res.redirect(303, homeFor(req, inspection));
      next();
    },
  ];
}
