import type { RequestHandler } from 'express';
import type { Logger } from './logger';
import type { WebMetrics } from './metrics';

/**
 * One log line and one metric per request: method, route pattern, status, time. Never the query
 * string, a header or the body (forms carry passwords and PINs).
 */
export function requestLog(logger: Logger, metrics: WebMetrics): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = (req.route as { path?: string } | undefined)?.path ?? (req.path.startsWith('/static/') ? '/static' : 'unmatched');
      metrics.observeRequest(req.method, String(route), res.statusCode, seconds);
      // Probes are polled all the time: debug level keeps the log readable.
      const level = route === '/livez' || route === '/readyz' || route === '/metrics' ? 'debug' : res.statusCode >= 500 ? 'error' : 'info';
      logger[level]({ method: req.method, route, path: req.path.slice(0, 200), status: res.statusCode, ms: Math.round(seconds * 1000) }, 'request');
    });
    next();
  };
}
