import { createServer, Server } from 'node:https';
import { EXIT } from './exit-codes';
import { removePidFile, writePidFile } from './pid-file';
import type { KeywardRuntime } from './runtime';
import { bootRetryDelayOf } from '../machines/state-names';
import { isSetupPhase, phaseOf } from './web/lifecycle-phase';
import { PATHS } from './web/wizard-paths';
import { AutoRotation } from './web/auto-rotation';
import { loggableError } from './web/web-errors';
import { prepareWebServer } from './web/web-server';
import { NodeHealth } from './node-health';
import { growYoungGenerationUpTo, SERVER_YOUNG_GENERATION_BYTES } from './young-generation';
import { followDeploymentTls, followKeyset } from './web/deployment-tls';

const SESSION_PURGE_MS = 10 * 60_000;

/**
 * `keyward start`: BOOT, then HTTPS with the credential the machine chose (generated, stored or
 * temporary), swapped live whenever the machine puts another one in place. A refused start-up
 * (VERSION_DOWNGRADE) serves nothing and exits non-zero; a state that asks for a BOOT again after a
 * delay (a physical-HSM outage) gets it.
 * SIGTERM/SIGINT: stop accepting, finish the requests in flight, close the runtime.
 */
export async function serve(runtime: KeywardRuntime): Promise<number> {
  let booted = false;
  const before = await runtime.engine.inspect({ historyLimit: 0 }).catch(() => null);
  // One node of the deployment: its BOOT waits while its own probe fails and another node serves.
  const health = new NodeHealth(runtime);
  const result = await health.boot('startup');
  if (result.outcome === 'startup_refused') {
    process.stderr.write(`keyward: start-up refused: ${result.message}\n`);
    await runtime.close();
    return EXIT.STARTUP_REFUSED;
  }
  booted = true;
  if (result.outcome === 'deferred') {
    process.stderr.write(`keyward: this node is not ready: ${result.reason.detail}; it re-probes every ${health.heartbeatSeconds} s\n`);
  } else {
    process.stdout.write(`keyward: ${result.state}${result.wizardState ? ` (${result.wizardState})` : ''}\n`);
    if (result.message) process.stderr.write(`keyward: ${result.message}\n`);
  }

  let web;
  try {
    // Another process's BOOT decided: its certificate is the deployment's, in the database, not yet in this node's directory.
    if (result.outcome !== 'deferred' && result.followed) await followDeploymentTls(runtime, (await runtime.engine.inspect({ historyLimit: 0 })).context.tls, { temporaryIfNone: true });
    web = await prepareWebServer(runtime, { revisionBeforeBoot: before?.revision ?? 0, booted: () => booted, node: health });
    // This node starts again: the code it printed before is withdrawn before it serves (here, not in
    // the app's builder: only a process that holds the home lock is this node).
    const revoked = await web.deps.setupCode.restarted();
    if (revoked > 0) web.deps.logger.info({ revoked }, "set-up sessions of this node's earlier code ended");
  } catch (error) {
    // Closed either way: an open database would keep a process that serves nothing alive. The error
    // table gives the exit code (no TLS credential: start-up failed).
    await runtime.close();
    throw error;
  }
  const { deps, console: operator } = web;

  const server: Server = createServer(deps.tls.options, web.app);
  deps.tls.attach(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(runtime.config.port, runtime.config.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : runtime.config.port;
  const host = runtime.config.host.includes(':') ? `[${runtime.config.host}]` : runtime.config.host;
  const url = `https://${host}:${port}/`;
  let stopped = false;
  let retry: NodeJS.Timeout | null = null;
  const rotation = new AutoRotation(deps);
  const purge = setInterval(() => void deps.work.track(deps.sessions.purgeExpired().catch(() => 0)), SESSION_PURGE_MS);
  purge.unref();
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((resolve) => (resolveExit = resolve));
  const stop = async (signal: string) => {
    if (stopped) return;
    stopped = true;
    operator.say(`${signal}: shutting down (finishing the requests in flight)`);
    if (retry) clearTimeout(retry);
    clearInterval(purge);
    rotation.stop();
    deps.backups.stop();
    if (deps.rotations.current)
      operator.say(`waiting for the ${deps.rotations.current.kind.toUpperCase()} rotation in progress (what is left after ${deps.config.shutdownGraceMs} ms resumes at the next start)`);
    // Stop accepting; idle keep-alive connections close now, busy ones after their response.
    const closed = new Promise<void>((done) => server.close(() => done()));
    server.closeIdleConnections();
    const grace = setTimeout(() => server.closeAllConnections(), deps.config.shutdownGraceMs);
    grace.unref();
    await closed;
    clearTimeout(grace);
    // The database closes last: after the watcher's reading and every event this process applies.
    await deps.watcher.stop();
    await health.stop();
    if (!(await deps.work.drain(deps.config.shutdownGraceMs))) deps.logger.warn({ pending: deps.work.size }, 'shutting down with lifecycle work still running');
    removePidFile(runtime.config.home);
    try {
      await runtime.close();
      operator.say('stopped');
      resolveExit(EXIT.OK);
    } catch (error) {
      deps.logger.error({ error: loggableError(error) }, 'closing the runtime failed');
      resolveExit(EXIT.ERROR);
    }
  };
  // Before the server says it serves: from then on a SIGTERM shuts down cleanly.
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  operator.serving(url, deps.tls.fingerprintSha256);
  writePidFile(runtime.config.home);
  growYoungGenerationUpTo(SERVER_YOUNG_GENERATION_BYTES);

  // The delays the machine names (`bootAfter` in a state's meta), from the configuration.
  const delays: Record<string, number> = { outageRetry: runtime.config.outageRetrySeconds * 1000 };
  // Armed from whatever state the watcher reads, the one persisted before this process started included.
  const armRetry = (state: string) => {
    const delay = bootRetryDelayOf(state);
    if (delay === null || retry !== null || stopped) return;
    const ms = delays[delay];
    if (ms === undefined) throw new Error(`the machine names a delay ${delay} that the server does not know`);
    deps.bootRetry.nextAt = new Date(Date.now() + ms).toISOString();
    retry = setTimeout(() => {
      deps.bootRetry.nextAt = null;
      void deps.work.track(
        (async () => {
          const { state: now } = await runtime.engine.inspect({ historyLimit: 0 }).catch(() => ({ state }));
          if (bootRetryDelayOf(now) !== null) {
            await runtime.boot('outage-retry').catch((error: Error) => deps.logger.error({ error: loggableError(error) }, 'outage retry failed'));
          }
          retry = null;
          const latest = await deps.watcher.poll();
          armRetry(latest?.state ?? now);
        })(),
      );
    }, ms);
    retry.unref();
  };

  let announced = false;
  deps.watcher.onChange(async (current, previous) => {
    deps.sessions.forgetRecent();
    armRetry(current.state);
    const phase = phaseOf(current.state);
    // Another process (the CLI, a replica) may have rotated or recovered the keyset: take its DEKs now
    // rather than at the first fenced write; the stored TLS key opens with them.
    if (phase === 'operational') await followKeyset(deps.runtime).catch((error: unknown) => deps.logger.warn({ error: loggableError(error) }, 'the keyset could not be reloaded'));
    // A replica may have put another certificate in place: this node's directory follows the database's.
    await followDeploymentTls(deps.runtime, current.context.tls).catch((error: unknown) => deps.logger.warn({ error: loggableError(error) }, "the deployment's TLS credential could not be taken"));
    await deps.tls.refresh(current.context.tls?.fingerprintSha256);
    if (phase === 'operational' && (previous === null || phaseOf(previous.state) !== 'operational')) {
      const revoked = await deps.sessions.revokeSetupAuthorizations();
      if (revoked > 0) deps.logger.info({ revoked }, 'the wizard is complete: set-up sessions ended');
      await deps.setupCode.retire();
    }
    // Operational with a rotation still recorded: a crash (or a token loss) interrupted it. It is
    // finished in the background while the server serves, after BOOT and after an auto-restore alike.
    if (!stopped && !health.bootDeferred && rotation.resumeInterrupted(current))
      operator.say(`resuming the ${current.context.keyRotation!.kind.toUpperCase()} rotation that was interrupted (the server serves meanwhile)`);
    if (isSetupPhase(phase) && !announced) {
      // The code is in the database: a reading that fails is tried again at the next change.
      const notice = await deps.setupCode.announce();
      announced = true;
      if (notice.revoked) deps.logger.info({ revoked: notice.revoked }, 'set-up sessions of an earlier code ended');
      operator.setupCode(notice, `${url}${PATHS.unlock.slice(1)}`);
    }
    if (healthStarted && !stopped) void health.lifecycleChanged();
  });
  let healthStarted = false;
  await deps.watcher.poll();
  if (stopped) return exited;
  await health.start(
    {
      lifecycleState: () => deps.watcher.current?.state ?? null,
      watcherHealthy: () => deps.watcher.healthy,
      servedFingerprint: () => deps.tls.fingerprintSha256,
      logger: deps.logger,
    },
    // A BOOT deferred at start-up, sent once this node's own probe was fine: what start-up does after BOOT.
    async (late) => {
      operator.say(`this node is ready: its BOOT was sent (${late.state})`);
      // The watcher's observers take the new revision (TLS, keyset, an interrupted rotation).
      await deps.watcher.poll();
      if (!stopped) rotation.start();
    },
  );
  healthStarted = true;
  if (stopped) return exited;
  deps.watcher.start();
  // With KEYWARD_AUTO_ROTATE=on, the policy's timer (an interrupted rotation is resumed above).
  if (!health.bootDeferred) rotation.start();
  // Every node arms the backup schedule; the database gives each scheduled time to one of them.
  await deps.backups.start().catch((error: unknown) => deps.logger.error({ error: loggableError(error) }, 'the backup schedule could not be armed'));
  if (stopped) deps.backups.stop();

  return exited;
}
