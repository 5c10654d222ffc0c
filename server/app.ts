import cookieParser from 'cookie-parser';
import express, { Express, RequestHandler } from 'express';
import { wizardGate } from './web/wizard-gate';
import { MULTIPART_LIMITS, multipartForms } from './web/multipart';
import { restoreUploadGate } from './web/restore-upload';
import { PATHS } from './web/wizard-paths';
import { requestLog } from './web/request-log';
import { authRoutes } from './web/routes/auth';
import { BACKUP_PATHS, backupRoutes, backupVerifyGate } from './web/routes/backups';
import { autoRestoreRoutes } from './web/routes/auto-restore';
import { deviceRoutes } from './web/routes/devices';
import { homeRoutes } from './web/routes/home';
import { inspectRoutes } from './web/routes/inspect';
import { inventoryRoutes } from './web/routes/inventory';
import { keyRoutes } from './web/routes/keys';
import { recoveryShareRoutes } from './web/routes/recovery-shares';
import { probeRoutes } from './web/routes/probes';
import { statusRoutes } from './web/routes/status';
import { summaryRoutes } from './web/routes/summary';
import { unlockRoutes } from './web/routes/unlock';
import { finishRoutes } from './web/routes/wizard-finish';
import { setupModeRoutes } from './web/routes/wizard-mode';
import { storageRoutes } from './web/routes/wizard-storage';
import { tlsRoutes } from './web/routes/wizard-tls';
import { vendorAssets } from './web/vendor-assets';
import { noStore, securityHeaders } from './web/security-headers';
import { errorHandler, notFound } from './web/web-errors';
import type { WebDeps } from './web/web-deps';

export { isReady } from './web/lifecycle-phase';

/** A body parser for the requests that may carry a form: a page's GET or HEAD passes by without a look at its headers. */
function withBody(parse: RequestHandler): RequestHandler {
  return (req, res, next) => (req.method === 'GET' || req.method === 'HEAD' ? next() : parse(req, res, next));
}

/**
 * The HTTP application. Routes only read state or send one event to the engine; none writes
 * lifecycle state any other way. Order matters: probes need no session; every form is parsed, its
 * session loaded and its CSRF token checked before any route sees it.
 */
export function createApp(deps: WebDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.set('views', deps.config.viewsDir);
  app.set('view engine', 'ejs');
  app.engine('ejs', deps.views.render);
  // Express caches templates only under NODE_ENV=production; keyward always does.
  app.set('view cache', true);

  app.use(requestLog(deps.logger, deps.metrics));
  app.use(securityHeaders(deps.config.hstsSeconds));
  app.use('/static/vendor', vendorAssets());
  app.use('/static', express.static(deps.config.publicDir, { index: false, maxAge: '1h', fallthrough: false }));
  probeRoutes(deps, app);

  app.use(cookieParser());
  app.use(deps.sessions.middleware());
  app.use(withBody(express.urlencoded({ extended: false, limit: '64kb', parameterLimit: 50 })));
  app.use(PATHS.restore, restoreUploadGate);
  app.use(BACKUP_PATHS.verify, backupVerifyGate);
  const restoreLimits = { ...MULTIPART_LIMITS, maxFileBytes: deps.config.restoreUploadBytes, maxBodyBytes: deps.config.restoreUploadBytes };
  // An archive to verify is as large as one to restore.
  const archiveUpload = (req: { path: string }) => [PATHS.restore, `${BACKUP_PATHS.verify}/`].includes(req.path.replace(/\/?$/, '/'));
  app.use(withBody(multipartForms(deps.uploads, (req) => (archiveUpload(req) ? restoreLimits : MULTIPART_LIMITS))));
  app.use(deps.csrf.protect);
  app.use(noStore);

  app.use('/setup-wizard', ...wizardGate(deps));
  // The pages' routes on the application itself: a request walks one list of routes, not a router
  // per module; the wizard's, all under /setup-wizard/, sit behind one look at the path.
  homeRoutes(deps, app);
  const wizard = express.Router();
  for (const addRoutes of [unlockRoutes, storageRoutes, setupModeRoutes, tlsRoutes, finishRoutes, autoRestoreRoutes]) addRoutes(deps, wizard);
  const wizardPages: RequestHandler = (req, res, next) => (req.path.startsWith('/setup-wizard/') ? wizard(req, res, next) : next());
  // Its routes where listRoutes (web/route-list.ts) looks for a router's.
  app.use(Object.assign(wizardPages, { stack: wizard.stack }));
  for (const addRoutes of [authRoutes, statusRoutes, summaryRoutes, keyRoutes, backupRoutes, recoveryShareRoutes, deviceRoutes, inventoryRoutes, inspectRoutes]) {
    addRoutes(deps, app);
  }

  app.use(notFound);
  app.use(errorHandler(deps.logger));
  return app;
}
