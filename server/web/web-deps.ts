import type { BackupSchedule } from '../backup-schedule';
import type { NodeHealth } from '../node-health';
import type { BackupMetrics } from './backup-metrics';
import type { KeywardRuntime } from '../runtime';
import type { Csrf } from './csrf';
import type { GraphRenderer } from './graph-svg';
import type { LifecycleWatcher } from './lifecycle-watcher';
import type { KeyMetrics } from './key-metrics';
import type { LiveTls } from './live-tls';
import type { Logger } from './logger';
import type { WebMetrics } from './metrics';
import type { RateLimits } from './rate-limits';
import type { RotationRunner } from './rotation-runner';
import type { SessionService } from './sessions';
import type { SharedSetupCode } from './setup-code';
import type { UploadArea } from './uploads';
import type { WebConfig } from './web-config';
import type { ViewEngine } from './view-engine';
import type { WorkTracker } from './work-tracker';

/** Everything the routes use, made once per process by server/web/web-server.ts. */
export interface WebDeps {
  runtime: KeywardRuntime;
  config: WebConfig;
  logger: Logger;
  metrics: WebMetrics;
  sessions: SessionService;
  csrf: Csrf;
  setupCode: SharedSetupCode;
  tls: LiveTls;
  watcher: LifecycleWatcher;
  uploads: UploadArea;
  rateLimits: RateLimits;
  graph: GraphRenderer;
  /** The pages' templates, compiled once (renderPage; Express's res.render for the error page). */
  views: ViewEngine;
  /** Lifecycle events and readings in progress: shutdown waits for them before closing the database. */
  work: WorkTracker;
  /** The KEK or DEK rotation this process runs in the background (one at a time). */
  rotations: RotationRunner;
  /** The keys' gauges on /metrics, read at most once per watch interval. */
  keyMetrics: KeyMetrics;
  /** Scheduled backups and drills, and their history in the database (the Backups page, the status page). */
  backups: BackupSchedule;
  /** The backup and drill gauges on /metrics. */
  backupMetrics: BackupMetrics;
  /** When this process's outage retry (a BOOT after `bootAfter`) runs next; set by server/serve.ts, null when none is armed. */
  bootRetry: { nextAt: string | null };
  /** True once this process's BOOT has settled. */
  booted(): boolean;
  /** This process as a node of the deployment (`keyward start`): its own readiness; absent where no server runs. */
  node?: NodeHealth;
}
