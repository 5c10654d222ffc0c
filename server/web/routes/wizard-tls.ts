import { Router } from 'express';
import type { Request, Response } from 'express';
import { MAX_INPUT_BYTES } from '../../../tls/input-file';
import type { Inspection } from '../../lifecycle-engine';
import { field, FormState, renderPage } from '../render';
import { requestHost, tlsWarnings } from '../tls-warnings';
import { failureOf, fieldFailure, formEvent, sendEvent } from '../web-events';
import type { WebDeps } from '../web-deps';
import { afterEvent, stepAction, stepPage } from '../wizard-step';
import { PATHS } from '../wizard-paths';

const SELECT = ['WIZARD_SELECT_TLS_SERVER_CREDENTIAL'];
const APPLY = ['WIZARD_TLS_SERVER_CREDENTIAL_APPLY'];
const PKCS12_FIELDS = ['pkcs12File', 'pkcs12Password'] as const;
/** The PKCS#12 form's names for the event's fields and secrets. */
const PKCS12_NAMES = { path: 'pkcs12File', password: 'pkcs12Password' };
const PEM_FIELDS = ['keyFile', 'certificateFile', 'chainFile'] as const;

/** Wizard: the TLS server credential (generate, import PKCS#12, import PEM), then apply or cancel. */
export function tlsRoutes(deps: WebDeps, router: Router = Router()): Router {
  const served = () => ({ fingerprintSha256: deps.tls.fingerprintSha256, notAfter: deps.tls.notAfter });

  router.get(
    PATHS.selectTls,
    stepPage(SELECT, (req, res, inspection) => {
      renderPage(deps, req, res, 'setup-wizard/select-tls', { title: 'TLS server credential', inspection, served: served(), lastError: inspection.context.lastError });
    }),
  );

  // ── generate ──
  const renderGenerate = (req: Request, res: Response, inspection: Inspection, form: FormState = {}, status = 200) =>
    renderPage(
      deps,
      req,
      res,
      'setup-wizard/generate-tls',
      { title: 'Generate a TLS server credential', inspection, ...form, values: { subjectAltNames: deps.runtime.config.defaultSubjectAltNames.join('\n'), ...form.values } },
      status,
    );

  router.get(
    PATHS.generateTls,
    stepPage(SELECT, (req, res, inspection) => renderGenerate(req, res, inspection)),
  );

  router.post(
    PATHS.generateTls,
    stepAction(SELECT, async (req, res, inspection) => {
      const text = field(req, 'subjectAltNames');
      const subjectAltNames = text
        .split(/[\s,]+/)
        .map((name) => name.trim())
        .filter(Boolean);
      if (subjectAltNames.length === 0) {
        return renderGenerate(
          req,
          res,
          inspection,
          { values: { subjectAltNames: text }, errors: { subjectAltNames: 'Give at least one name (a DNS name or an IP address) the server is reached by.' } },
          400,
        );
      }
      const { result, after } = await sendEvent(deps, req, 'GENERATE_TLS', { subjectAltNames });
      const failure = failureOf(result, { mainField: 'subjectAltNames', fields: ['subjectAltNames'] });
      if (failure) return renderGenerate(req, res, after ?? inspection, { values: { subjectAltNames: text }, ...fieldFailure(failure) }, failure.status);
      afterEvent(req, res, after, inspection);
    }),
  );

  // ── import: PKCS#12 or PEM files, uploaded ──
  const renderImport = (req: Request, res: Response, inspection: Inspection, form: FormState & { format?: string } = {}, status = 200) =>
    renderPage(deps, req, res, 'setup-wizard/import-tls', { title: 'Import a TLS server credential', inspection, maxKiB: MAX_INPUT_BYTES / 1024, format: 'pkcs12', ...form }, status);

  router.get(
    PATHS.importTls,
    stepPage(SELECT, (req, res, inspection) => renderImport(req, res, inspection)),
  );

  router.post(
    PATHS.importTls,
    stepAction(SELECT, async (req, res, inspection) => {
      const uploads = req.uploads ?? {};
      const format = field(req, 'format') === 'pem' ? 'pem' : 'pkcs12';
      if (format === 'pkcs12') {
        const file = uploads.pkcs12File;
        if (!file) return renderImport(req, res, inspection, { format, errors: { pkcs12File: 'Choose the PKCS#12 file (.p12 or .pfx).' } }, 400);
        if (field(req, 'pkcs12Password') === '') return renderImport(req, res, inspection, { format, errors: { pkcs12Password: 'Enter the password the PKCS#12 file was exported with.' } }, 400);
        const outcome = await deps.uploads.with([file], async ([path], describe) => {
          // The file arrives as an upload; its password is a form field named for the form.
          const { secrets } = formEvent(req, 'IMPORT_TLS_PKCS12', PKCS12_NAMES);
          const sent = await sendEvent(deps, req, 'IMPORT_TLS_PKCS12', { path }, secrets);
          return { ...sent, describe };
        });
        const failure = failureOf(outcome.result, { mainField: 'pkcs12File', fields: PKCS12_FIELDS, fieldMap: PKCS12_NAMES });
        if (failure) return renderImport(req, res, outcome.after ?? inspection, { format, errors: { [failure.field]: outcome.describe(failure.message) } }, failure.status);
        return afterEvent(req, res, outcome.after, inspection);
      }
      const key = uploads.keyFile;
      const certificate = uploads.certificateFile;
      const chain = uploads.chainFile;
      const missing: Record<string, string> = {};
      if (!key) missing.keyFile = 'Choose the private key file (PEM).';
      if (!certificate) missing.certificateFile = 'Choose the certificate file (PEM).';
      if (!key || !certificate) return renderImport(req, res, inspection, { format, errors: missing }, 400);
      const outcome = await deps.uploads.with(chain ? [key, certificate, chain] : [key, certificate], async ([keyFile, certificateFile, chainFile], describe) => {
        const sent = await sendEvent(deps, req, 'IMPORT_TLS_FILES', { keyFile, certificateFile, chainFile: chainFile ?? null });
        return { ...sent, describe };
      });
      const failure = failureOf(outcome.result, { mainField: 'certificateFile', fields: PEM_FIELDS });
      if (failure) return renderImport(req, res, outcome.after ?? inspection, { format, errors: { [failure.field]: outcome.describe(failure.message) } }, failure.status);
      afterEvent(req, res, outcome.after, inspection);
    }),
  );

  // ── apply or cancel ──
  const renderApply = async (req: Request, res: Response, inspection: Inspection, form: FormState = {}, status = 200) => {
    const id = inspection.context.pendingTlsCredentialId;
    await deps.runtime.custody.ensureDek();
    const pending = id === null ? null : await deps.runtime.store.tls.get(id);
    const offered = pending && { fingerprintSha256: pending.fingerprintSha256, notAfter: pending.notAfter, subjectAltNames: pending.subjectAltNames, source: pending.source };
    // Said before the credential is applied: a name it misses or an end close by (KEYWARD_TLS_SANS are the configured names).
    const warnings = offered ? tlsWarnings(offered, { request: requestHost(req.headers.host), configured: deps.runtime.config.defaultSubjectAltNames }, Date.now()) : [];
    renderPage(deps, req, res, 'setup-wizard/tls-apply', { title: 'Apply the TLS server credential', inspection, served: served(), offered, warnings, ...form }, status);
  };

  router.get(
    PATHS.tlsApply,
    stepPage(APPLY, (req, res, inspection) => renderApply(req, res, inspection)),
  );

  router.post(
    PATHS.tlsApply,
    stepAction(APPLY, async (req, res, inspection) => {
      const { result, after } = await sendEvent(deps, req, 'APPLY_TLS', {});
      const failure = failureOf(result, { mainField: 'apply', fields: ['apply'] });
      if (failure) return renderApply(req, res, after ?? inspection, { formError: failure.message, formErrorCode: failure.code }, failure.status);
      afterEvent(req, res, after, inspection);
    }),
  );

  router.post(
    PATHS.tlsApplyCancel,
    stepAction(APPLY, async (req, res, inspection) => {
      const { result, after } = await sendEvent(deps, req, 'CANCEL_TLS', {});
      const failure = failureOf(result, { mainField: 'apply', fields: ['apply'] });
      if (failure) return renderApply(req, res, after ?? inspection, { formError: failure.message, formErrorCode: failure.code }, failure.status);
      afterEvent(req, res, after, inspection);
    }),
  );

  return router;
}
