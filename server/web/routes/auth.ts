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

/**
 * The administrator's login (Argon2id hashes made by the wizard's createAdminUser effect). An unknown
 * user costs the same Argon2 verification as a wrong password, so timing does not tell them apart.
 */
export function authRoutes(deps: WebDeps): Router {
  const router = Router();
  let decoy: Promise<string> | null = null;
  const decoyHash = () => (decoy ??= argon2.hash(`decoy-${Date.now()}-${Math.random()}`, { type: argon2.argon2id, memoryCost: 65536, timeCost: 3, parallelism: 1 }));

  const loginOpen = (inspection: Inspection) => {
    const phase = phaseOf(inspection.state);
    // An administrator exists once the wizard has completed; auto-restore may be run after a login too.
    return inspection.context.wizardCompleted && phase !== 'wizard';
  };
  const render = (req: Request, res: Response, form: FormState = {}, status = 200) =>
    renderPage(deps, req, res, 'login', { title: 'Log in', next: localPath(req.query.next) ?? localPath(field(req, 'next')) ?? '', ...form }, status);

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
    const admin = username.length <= 150 ? await deps.runtime.store.admins.findByUsername(username) : null;
    const verified = await argon2.verify(admin?.passwordHash ?? (await decoyHash()), password);
    if (!admin || !verified) {
      // The name is not logged: people type passwords into the wrong field.
      deps.logger.warn('login failed');
      return render(req, res, { values, errors: { password: LOGIN_FAILED } }, 401);
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
