import express, { Express } from 'express';
import type { KeywardRuntime } from './runtime';

/** States in which the server is ready to serve its purpose (not booting, not waiting for a password). */
export function isReady(state: string): boolean {
  return state.startsWith('operational') || state.startsWith('wizard.');
}

/**
 * The HTTP application. Routes only read state or emit events to the engine; none writes lifecycle
 * state any other way.
 */
export function createApp(runtime: KeywardRuntime, status: { booted: () => boolean }): Express {
  const app = express();
  app.disable('x-powered-by');

  app.get('/livez', (_req, res) => {
    res.type('text/plain').send('ok\n');
  });

  app.get('/readyz', async (_req, res, next) => {
    try {
      const inspection = await runtime.engine.inspect({ historyLimit: 0 });
      const ready = status.booted() && isReady(inspection.state);
      res.status(ready ? 200 : 503).type('text/plain').send(`${ready ? 'ready' : 'not ready'}: ${inspection.state}\n`);
    } catch (error) {
      next(error);
    }
  });

  app.get('/status.json', async (_req, res, next) => {
    try {
      const i = await runtime.engine.inspect({ historyLimit: 0 });
      res.json({ state: i.state, wizardState: i.wizardState, scenario: i.scenario, accepts: i.accepts, revision: i.revision, tls: i.context.tls, reason: i.context.reason });
    } catch (error) {
      next(error);
    }
  });

  return app;
}
