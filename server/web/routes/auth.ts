import * as argon2 from 'argon2';
import { Router } from 'express';
import type { Request, Response } from 'express';
import type { Inspection } from '../../lifecycle-engine';
import { homeFor, inspectionOf, isAdmin, localPath, readLifecycle } from '../access';
import { phaseOf } from '../lifecycle-phase';
import { field, FormState, renderPage } from '../render';
import type { WebDeps } from '../web-deps';
import { PATHS } from '../wizard-paths';

const LOGIN_FAILED = 'The user name or the password is wrong.';
const lockedMessage = (lockedUntil: string) => `Too many failed logins for this account: it is locked until ${lockedUntil.slice(11, 16)} UTC. Try again then.`;

/**
 * The administrator's login (Argon2id hashes made by the wizard's createAdminUser effect). An unknown
 * user costs the same Argon2 verification as a wrong password, so timing does not tell them apart.
 */
export function authRoutes(deps: WebDeps, router: Router = Router()): Router {
  let decoy: Promise<string> | null = null;
  const decoyHash = () => (decoy ??= argon2.hash(`decoy-${Date.now()}-${Math.random()}`, { type: argon2.argon2id, memoryCost: 65536, timeCost: 3, parallelism: 1 }));

  const loginOpen = (inspection: Inspection) => {
    const phase = phaseOf(inspection.state);
    // An administrator exists once the wizard has completed; auto-restore may be run after a login too.
    return inspection.context.wizardCompleted && phase !== 'wizard';
  };
  // `lockedUntil`: the end of an account's lock, shown as a countdown in the browser's time zone (views/public/js/lockout.js).
  const render = (req: Request, res: Response, form: FormState & { lockedUntil?: string | null } = {}, status = 200) =>
    renderPage(deps, req, res, 'login', { title: 'Log in', next: localPath(req.query.next) ?? localPath(field(req, 'next')) ?? '', lockedUntil: null, ...form }, status);

  const renderLocked = (req: Request, res: Response, values: Record<string, string>, lockedUntil: string) => {
    res.setHeader('Retry-After', String(Math.max(1, Math.ceil((Date.parse(lockedUntil) - Date.now()) / 1000))));
    render(req, res, { values, errors: { password: lockedMessage(lockedUntil) }, lockedUntil }, 429);
  };

  router.get(PATHS.login, readLifecycle(deps), (req, res) => {
    const inspection = inspectionOf(res);
    if (!loginOpen(inspection) || isAdmin(req)) return res.redirect(302, homeFor(req, inspection));
    render(req, res);
  });

  router.post(PATHS.login, deps.rateLimits.login, readLifecycle(deps), async (req, res) => {
    const inspection = inspectionOf(res);
    if (!loginOpen(inspection)) return res.redirect(303, homeFor(req, inspection));
    const username = field(req, 'username').trim();
    const password = field(req, 'password');
    const values = { username };
    if (username === '' || password === '') return render(req, res, { values, errors: { username: 'Enter your user name and password.' } }, 400);
    const admins = deps.runtime.store.admins;
    const admin = username.length <= 150 ? await admins.findByUsername(username) : null;
    // The per-account limit (kept in the database): while locked, not even the right password.
    if (admin?.lockedUntil && Date.parse(admin.lockedUntil) > Date.now()) return renderLocked(req, res, values, admin.lockedUntil);
    const verified = await argon2.verify(admin?.passwordHash ?? (await decoyHash()), password);
    if (!admin || !verified) {
      // The name is not logged: people type passwords into the wrong field.
      deps.logger.warn('login failed');
      const lockedUntil = admin ? (await admins.recordFailedLogin(admin.id)).lockedUntil : null;
      if (lockedUntil) deps.logger.warn({ lockedUntil }, 'an administrator account is locked after repeated failed logins');
      return render(req, res, { values, errors: { password: lockedUntil ? `${LOGIN_FAILED} ${lockedMessage(lockedUntil)}` : LOGIN_FAILED }, lockedUntil }, 401);
    }
    await deps.sessions.grant(req, res, { admin: { id: admin.id, username: admin.username } });
    await deps.runtime.store.admins.recordLogin(admin.id);
    deps.logger.info({ username: admin.username }, 'administrator logged in');
    res.redirect(303, localPath(field(req, 'next')) ?? homeFor(req, inspection));
  });

  router.post(PATHS.logout, async (req, res) => {
    await deps.sessions.end(req, res);
    res.redirect(303, PATHS.login);
  });

  return router;
}
