import { hostname } from 'node:os';
import type { Express } from 'express';
import { RateLimitRepository, SetupCodeRepository, WebSessionRepository } from '../../db/store';
import { createApp } from '../app';
import type { NodeHealth } from '../node-health';
import type { KeywardRuntime } from '../runtime';
import { createCsrf, SharedCsrfKey } from './csrf';
import { GraphRenderer } from './graph-svg';
import { ViewEngine } from './view-engine';
import { LifecycleWatcher } from './lifecycle-watcher';
import { LiveTls } from './live-tls';
import { createLogger, Logger } from './logger';
import { WebMetrics } from './metrics';
import { OperatorConsole } from './operator-console';
import { createRateLimits } from './rate-limits';
import { DatabaseSessionStore, MemorySessionStore, RecentSessionStore, SessionStore } from './session-store';
import { SessionService } from './sessions';
import { SharedSetupCode } from './setup-code';
import { phaseOf } from './lifecycle-phase';
import { UploadArea } from './uploads';
import { loadWebConfig, WebConfig } from './web-config';
import type { WebDeps } from './web-deps';
import { RotationRunner } from './rotation-runner';
import { KeyMetrics } from './key-metrics';
import { BackupSchedule } from '../backup-schedule';
import { BackupMetrics } from './backup-metrics';
import { WorkTracker } from './work-tracker';

export interface WebServer {
  app: Express;
  deps: WebDeps;
  console: OperatorConsole;
}

export interface WebServerOptions {
  /** The lifecycle revision before this process's BOOT, so the metrics count BOOT's transitions. */
  revisionBeforeBoot: number;
  booted: () => boolean;
  node?: NodeHealth;
  logger?: Logger;
  console?: OperatorConsole;
}

/**
 * Builds everything the HTTPS server needs around a booted runtime: the live TLS credential, the
 * session store, CSRF, the set-up code, metrics, the lifecycle watcher, and the Express app.
 * Listens on nothing: server/serve.ts does.
 */
export async function prepareWebServer(runtime: KeywardRuntime, options: WebServerOptions): Promise<WebServer> {
  const config: WebConfig = loadWebConfig(runtime.config);
  const logger = options.logger ?? createLogger(config.logLevel);
  const operator = options.console ?? new OperatorConsole();
  const metrics = new WebMetrics();
  const tls = await LiveTls.load(runtime.config.tlsDir, (material) => {
    metrics.tlsSwaps.inc();
    metrics.tlsNotAfter.set(Date.parse(material.notAfter) / 1000);
    operator.tlsSwapped(material.fingerprintSha256, material.notAfter);
    logger.info({ fingerprintSha256: material.fingerprintSha256, notAfter: material.notAfter }, 'TLS credential swapped');
  });
  metrics.tlsNotAfter.set(Date.parse(tls.notAfter) / 1000);

  // A logout on another replica is seen here within this time (docs/deployment.md).
  const SESSION_ROWS_FRESH_MS = 1_000;
  const repository = new WebSessionRepository(runtime.store.db, runtime.store.reader);
  let store: SessionStore;
  if (await repository.tableExists()) {
    store = new RecentSessionStore(new DatabaseSessionStore(repository), SESSION_ROWS_FRESH_MS);
  } else {
    logger.warn('the database has no web_sessions table yet (its schema predates it at this keyward version): sessions are kept in memory and end with this process');
    store = new MemorySessionStore();
  }
  const sessions = new SessionService(store, { idleMs: config.sessionIdleMs, maxMs: config.sessionMaxMs });
  const uploads = new UploadArea(config.uploadsDir);
  await uploads.clear();
  // Made (or found) when the lifecycle first needs a set-up: server/serve.ts withdraws this node's earlier one and announces it.
  const setupCode = new SharedSetupCode(new SetupCodeRepository(runtime.store.db), `${hostname()}:${runtime.config.home}`, () => sessions.revokeSetupAuthorizations());
  const work = new WorkTracker();
  const watcher = new LifecycleWatcher(runtime, metrics, logger, config.watchIntervalMs, options.revisionBeforeBoot, work);
  const csrfKey = new SharedCsrfKey(runtime.store.webSecrets, {
    legacyFile: config.csrfKeyFile,
    phase: () => (watcher.current ? phaseOf(watcher.current.state) : null),
    loadDek: () => runtime.custody.ensureDek(),
    logger,
  });
  await csrfKey.load({ loadDek: true });
  // A DEK created, recovered or lost, a storage type chosen: the shared key may have been replaced.
  watcher.onChange(async () => {
    if (await csrfKey.load({ loadDek: true })) logger.info('the CSRF key changed (forms signed with the earlier one are refused once)');
  });

  const backups = new BackupSchedule(runtime, config.backups, logger, (job) => work.track(job));
  const deps: WebDeps = {
    runtime,
    config,
    logger,
    metrics,
    sessions,
    csrf: createCsrf(csrfKey),
    setupCode,
    tls,
    watcher,
    uploads,
    rateLimits: createRateLimits(new RateLimitRepository(runtime.store.db)),
    graph: new GraphRenderer(),
    views: new ViewEngine(config.viewsDir),
    work,
    rotations: new RotationRunner(runtime, work, logger, () => watcher.poll()),
    keyMetrics: new KeyMetrics(runtime, metrics, logger, config.watchIntervalMs),
    backups,
    backupMetrics: new BackupMetrics(backups, metrics, logger, config.watchIntervalMs),
    bootRetry: { nextAt: null },
    booted: options.booted,
    node: options.node,
  };
  return { app: createApp(deps), deps, console: operator };
}
