import { dirname, join } from 'node:path';
import express, { Router } from 'express';

/**
 * Browser libraries from the installed npm packages, served by this server under /static/vendor/:
 * the CSP lets pages load scripts from this origin only, and an install may have no outside network.
 * Only the packages' dist folders are exposed, never node_modules as a whole.
 */
const PACKAGES: Readonly<Record<string, string>> = {
  'svg-pan-zoom': 'dist',
};

export function vendorAssets(): Router {
  const router = Router();
  for (const [name, folder] of Object.entries(PACKAGES)) {
    const root = join(dirname(require.resolve(`${name}/package.json`)), folder);
    router.use(`/${name}`, express.static(root, { index: false, maxAge: '1h', fallthrough: false }));
  }
  return router;
}
