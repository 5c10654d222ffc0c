import type { Request, RequestHandler, Response } from 'express';
import helmet from 'helmet';

/**
 * helmet with a Content-Security-Policy that allows no inline script and no inline style: scripts
 * and styles come from /static only; the state graph is SVG drawn on this server. HSTS is off unless
 * configured: on a self-signed certificate it would stop an operator from clicking through.
 * None depends on the request: helmet computes them once, and every response gets that list.
 */
export function securityHeaders(hstsSeconds: number): RequestHandler {
  const headers = headersSetBy(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          scriptSrcAttr: ["'none'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'", 'data:'],
          fontSrc: ["'self'"],
          connectSrc: ["'self'"],
          objectSrc: ["'none'"],
          baseUri: ["'none'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          upgradeInsecureRequests: [],
        },
      },
      strictTransportSecurity: hstsSeconds > 0 ? { maxAge: hstsSeconds, includeSubDomains: false } : false,
      referrerPolicy: { policy: 'no-referrer' },
    }),
  );
  return (_req, res, next) => {
    for (const [name, value] of headers) res.setHeader(name, value);
    next();
  };
}

/** The headers a middleware sets on a response, in order; one that does anything else is refused here. */
export function headersSetBy(middleware: RequestHandler): Array<[string, string]> {
  const headers: Array<[string, string]> = [];
  let passed = false;
  // helmet also removes X-Powered-By, which Express is told never to send (app.ts).
  const res = { setHeader: (name: string, value: unknown) => headers.push([name, String(value)]), removeHeader: () => {} };
  let failure: unknown = null;
  void middleware({} as Request, res as unknown as Response, (error?: unknown) => {
    failure = error ?? null;
    passed = true;
  });
  if (failure) throw failure instanceof Error ? failure : new Error('the security headers middleware failed');
  if (!passed) throw new Error('the security headers middleware did not finish at once');
  return headers;
}

/** Pages carry CSRF tokens and, on request, a device's secret: no cache may keep them. */
export const noStore: RequestHandler = (_req, res, next) => {
  res.setHeader('Cache-Control', 'no-store');
  next();
};
