import { X509Certificate } from 'node:crypto';
import { Router } from 'express';
import { requireAdmin } from '../access';
import { renderPage } from '../render';
import type { WebDeps } from '../web-deps';
import { PATHS } from '../wizard-paths';

/** Credentials (never their keys) and CAs, active or deactivated with the reason. */
export function inventoryRoutes(deps: WebDeps, router: Router = Router()): Router {
  const { store } = deps.runtime;

  router.get(PATHS.credentials, ...requireAdmin(deps), async (req, res) => {
    const credentials = (await store.credentials.list()).map((credential) => ({ ...credential, certificate: describe(credential.certificatePem) }));
    renderPage(deps, req, res, 'credentials', { title: 'Credentials', credentials });
  });

  router.get(PATHS.cas, ...requireAdmin(deps), async (req, res) => {
    renderPage(deps, req, res, 'cas', { title: 'Certificate authorities', cas: await store.cas.list() });
  });

  return router;
}

function describe(pem: string | null): { subject: string; notAfter: string; fingerprint: string } | null {
  if (!pem) return null;
  try {
    const certificate = new X509Certificate(pem);
    return { subject: certificate.subject.replace(/\n/g, ', '), notAfter: new Date(certificate.validTo).toISOString(), fingerprint: certificate.fingerprint256 };
  } catch {
    return { subject: '(unreadable certificate)', notAfter: '', fingerprint: '' };
  }
}
