import { Router } from 'express';
import type { Request, Response } from 'express';
import { isStorageType } from '../../../hsm/storage-type';
import { describeMechanisms, reportCapabilities, WRAP_MECHANISMS } from '../../../hsm/token-capabilities';
import type { Inspection } from '../../lifecycle-engine';
import { field, FormState, renderPage } from '../render';
import { EVENT_SCHEMAS } from '../../../machines/events';
import { failureOf, fieldFailure, formEvent, sendEvent } from '../web-events';
import type { WebDeps } from '../web-deps';
import { WebError } from '../web-errors';
import { afterEvent, stepAction, stepPage } from '../wizard-step';
import { hsmTypeOf, PATHS } from '../wizard-paths';

const HSM_FIELDS = ['modulePath', 'label', 'slot', 'pin', 'soPin'] as const;
/** The module path itself failed: it is not offered again in the form. */
const MODULE_ERRORS: ReadonlySet<string> = new Set(['MODULE_MISSING', 'MODULE_LOAD_FAILED']);
const modulePathFailed = (error: { code: string; field?: string } | null | undefined) => error != null && (error.field === 'modulePath' || MODULE_ERRORS.has(error.code));

/** Wizard: crypto storage, then (for an HSM) the token; the same token form serves auto-restore. */
export function storageRoutes(deps: WebDeps, router: Router = Router()): Router {
  const storageStep = ['WIZARD_SETUP_CRYPTO_STORAGE'];

  const renderStorage = (req: Request, res: Response, inspection: Inspection, form: FormState = {}, status = 200) =>
    renderPage(deps, req, res, 'setup-wizard/crypto-storage', { title: 'Crypto storage', inspection, ...form }, status);

  router.get(
    PATHS.cryptoStorage,
    stepPage(storageStep, (req, res, inspection) => renderStorage(req, res, inspection)),
  );

  router.post(
    PATHS.cryptoStorage,
    stepAction(storageStep, async (req, res, inspection) => {
      const storageType = field(req, 'storageType');
      if (!isStorageType(storageType)) {
        return renderStorage(req, res, inspection, { errors: { storageType: 'Choose where keys are kept: software, SoftHSM or a physical HSM.' } }, 400);
      }
      const { result, after } = await sendEvent(deps, req, 'SELECT_STORAGE', { storageType });
      const failure = failureOf(result, { mainField: 'storageType', fields: ['storageType'] });
      if (failure) return renderStorage(req, res, after ?? inspection, { values: { storageType }, ...fieldFailure(failure) }, failure.status);
      afterEvent(req, res, after, inspection);
    }),
  );

  hsmSetupRoutes(deps, router, PATHS.hsmSetup, 'WIZARD_SETUP_HSM', false);

  // Back a step (the HSM token step, or the set-up mode under software storage): the machine decides whether it may.
  const backSteps = ['WIZARD_SETUP_HSM', 'WIZARD_SETUP_MODE'];
  router.post(
    PATHS.back,
    stepAction(backSteps, async (req, res, inspection) => {
      const { result, after } = await sendEvent(deps, req, 'BACK', {});
      const failure = failureOf(result, { mainField: 'back', fields: [] });
      if (failure) throw new WebError('NO_WAY_BACK', `The set-up cannot go back from this step (${failure.message}). Nothing was changed.`);
      afterEvent(req, res, after, inspection);
    }),
  );
  return router;
}

/** The token form (module path, label, slot, PIN, and the SO PIN to initialize a SoftHSM token). */
export function hsmSetupRoutes(deps: WebDeps, router: Router, path: string, wizardState: string, autoRestore: boolean): void {
  const step = [wizardState];
  const render = (req: Request, res: Response, inspection: Inspection, form: FormState = {}, status = 200) => {
    const hsmType = req.params.hsmType === 'physical' ? 'physical' : 'softhsm';
    const chosen = inspection.context.hsm;
    const defaultModule = hsmType === 'softhsm' ? deps.runtime.config.pkcs11Module : '';
    // A path whose module failed to load is not offered again (the form just sent shows what was typed).
    const chosenModule = chosen && !modulePathFailed(inspection.context.lastError) ? chosen.modulePath : null;
    const values = {
      modulePath: chosenModule ?? defaultModule,
      label: chosen?.label ?? deps.runtime.config.tokenLabel,
      slot: chosen?.slot === null || chosen?.slot === undefined ? '' : String(chosen.slot),
      ...form.values,
    };
    // What the module offers, for a module keyward was configured with or already asked to use (never a path just typed).
    const known = values.modulePath !== '' && (values.modulePath === chosenModule || values.modulePath === deps.runtime.config.pkcs11Module);
    const capabilities = known ? reportCapabilities(values.modulePath, values.label) : null;
    renderPage(
      deps,
      req,
      res,
      'setup-wizard/hsm-setup',
      { title: autoRestore ? 'Auto-restore: HSM token' : 'HSM token', inspection, hsmType, autoRestore, ...form, values, capabilities, describeMechanisms, wrapMechanisms: WRAP_MECHANISMS },
      status,
    );
  };

  router.get(
    path,
    stepPage(step, (req, res, inspection) => render(req, res, inspection)),
  );

  router.post(
    path,
    stepAction(step, async (req, res, inspection) => {
      const hsmType = req.params.hsmType as string;
      if (hsmType !== hsmTypeOf(inspection.context.storageType)) return res.redirect(303, PATHS.cryptoStorage);
      const { payload, secrets } = formEvent(req, 'SETUP_HSM');
      const values = { modulePath: payload.modulePath ?? '', label: payload.label ?? '', slot: payload.slot ?? '' };
      const missing = EVENT_SCHEMAS.SETUP_HSM.requires({ hsmType: hsmType === 'physical' ? 'physical' : 'softhsm' }).find((name) => !secrets[name]);
      if (missing)
        return render(req, res, inspection, { values, errors: { [missing]: missing === 'pin' ? 'Enter the token’s user PIN.' : 'Enter the security officer (SO) PIN for the new token.' } }, 400);
      // Each PIN typed twice: a typo here would lock the operator out of the new token.
      if (secrets.pin !== field(req, 'pinConfirm')) return render(req, res, inspection, { values, errors: { pinConfirm: 'The two user PINs differ: type the same PIN in both fields.' } }, 400);
      if (secrets.soPin !== undefined && secrets.soPin !== field(req, 'soPinConfirm'))
        return render(req, res, inspection, { values, errors: { soPinConfirm: 'The two SO PINs differ: type the same PIN in both fields.' } }, 400);
      const { result, after } = await sendEvent(deps, req, 'SETUP_HSM', { ...payload, hsmType }, secrets);
      const failure = failureOf(result, { mainField: 'pin', fields: HSM_FIELDS });
      if (failure) return render(req, res, after ?? inspection, { values, ...fieldFailure(modulePathFailed(result.error) ? { ...failure, field: 'modulePath' } : failure) }, failure.status);
      afterEvent(req, res, after, inspection);
    }),
  );
}
