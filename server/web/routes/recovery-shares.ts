import { Router } from 'express';
import type { Request, Response } from 'express';
import { decodeShare, MAX_SHARES, MIN_SHARES, verifyShare } from '../../../crypto/recovery-shares';
import { isKeyCustodyError } from '../../../errors/key-custody-error';
import type { Inspection } from '../../lifecycle-engine';
import { inspectionOf, requireAdmin } from '../access';
import { field, FormState, renderPage } from '../render';
import { failureOf, sendEvent } from '../web-events';
import type { WebDeps } from '../web-deps';
import { afterEvent, stepAction, stepPage } from '../wizard-step';
import { PATHS } from '../wizard-paths';

const ADMIN_PATH = `${PATHS.keys}/recovery-shares`;

/**
 * Recovery shares (docs/web.md "Recovery shares"): made in the optional wizard step after the backup
 * password, or later by an administrator, who can also verify one share against the set. The shares
 * are in exactly one response, the one that made them (no-store), and nowhere else.
 */
export function recoveryShareRoutes(deps: WebDeps, router: Router = Router()): Router {
  const keyMaterial = deps.runtime.store.keyMaterial;

  /** Sends CREATE_RECOVERY_SHARES; on success, renders the shares once, with `next` to go on. */
  const create = async (req: Request, res: Response, inspection: Inspection, fail: (form: FormState, status: number, after: Inspection) => void, next: string) => {
    const values = { shares: field(req, 'shares'), threshold: field(req, 'threshold') };
    const problem = countProblem(values);
    if (problem) return fail({ values, errors: problem }, 400, inspection);
    let shares: readonly string[] = [];
    const { result, after } = await sendEvent(deps, req, 'CREATE_RECOVERY_SHARES', values, {}, (box) => (shares = box.revealed('shares') ?? []));
    const failure = failureOf(result, { mainField: 'shares', fields: ['shares', 'threshold'] });
    if (failure || shares.length === 0) return fail({ values, errors: { [failure?.field ?? 'shares']: failure?.message ?? 'No shares were made.' } }, failure?.status ?? 500, after ?? inspection);
    const set = await keyMaterial.recoveryShareSet();
    renderPage(deps, req, res, 'recovery-shares-made', {
      title: 'Recovery shares',
      inspection: after ?? inspection,
      set,
      shares: shares.map((share, i) => ({ index: i + 1, groups: share.split('-') })),
      next,
    });
  };

  // ── the optional wizard step ──
  const step = ['WIZARD_RECOVERY_SHARES'];
  const renderStep = (req: Request, res: Response, inspection: Inspection, form: FormState = {}, status = 200) =>
    renderPage(deps, req, res, 'setup-wizard/recovery-shares', { title: 'Recovery shares', inspection, minShares: MIN_SHARES, maxShares: MAX_SHARES, ...form }, status);

  router.get(
    PATHS.recoveryShares,
    stepPage(step, (req, res, inspection) => renderStep(req, res, inspection)),
  );
  router.post(
    PATHS.recoveryShares,
    stepAction(step, async (req, res, inspection) => {
      if (field(req, 'choice') === 'skip') {
        const { result, after } = await sendEvent(deps, req, 'SKIP_RECOVERY_SHARES', {});
        const failure = failureOf(result, { mainField: 'shares', fields: ['shares'] });
        if (failure) return renderStep(req, res, after ?? inspection, { errors: { shares: failure.message } }, failure.status);
        return afterEvent(req, res, after, inspection);
      }
      await create(req, res, inspection, (form, status, after) => renderStep(req, res, after, form, status), PATHS.demoData);
    }),
  );

  // ── later, by an administrator ──
  const renderAdmin = async (req: Request, res: Response, form: FormState & { verified?: string | null; form?: string } = {}, status = 200, inspection = inspectionOf(res)) =>
    renderPage(
      deps,
      req,
      res,
      'recovery-shares',
      {
        title: 'Recovery shares',
        inspection,
        set: await keyMaterial.recoveryShareSet(),
        may: inspection.accepts.includes('CREATE_RECOVERY_SHARES'),
        minShares: MIN_SHARES,
        maxShares: MAX_SHARES,
        verified: null,
        form: null,
        ...form,
      },
      status,
    );

  router.get(ADMIN_PATH, ...requireAdmin(deps), async (req, res) => renderAdmin(req, res));
  router.post(ADMIN_PATH, ...requireAdmin(deps), async (req, res) => {
    if (field(req, 'confirm') !== 'yes')
      return renderAdmin(
        req,
        res,
        { form: 'create', values: { shares: field(req, 'shares'), threshold: field(req, 'threshold') }, errors: { confirm: 'Tick the box to confirm that the old shares stop working.' } },
        400,
      );
    await create(req, res, inspectionOf(res), (form, status, after) => void renderAdmin(req, res, { ...form, form: 'create' }, status, after), PATHS.keys);
  });

  // Checks one share against the set: its checksum, set id and commitment. Nothing is combined or changed.
  router.post(`${ADMIN_PATH}/verify`, deps.rateLimits.backupPassword, ...requireAdmin(deps), async (req, res) => {
    const set = await keyMaterial.recoveryShareSet();
    try {
      if (!set) return await renderAdmin(req, res, { form: 'verify', errors: { share: 'No share set has been made yet.' } }, 409);
      const share = decodeShare(field(req, 'share'));
      try {
        verifyShare(share, set);
      } finally {
        share.shamir.fill(0);
      }
      await renderAdmin(req, res, { form: 'verify', verified: `Share ${share.index} of ${set.shares} belongs to share set ${set.shareSetId} (${set.threshold} are needed to recover).` });
    } catch (error) {
      if (!isKeyCustodyError(error)) throw error;
      await renderAdmin(req, res, { form: 'verify', errors: { share: sentence(error.message) } }, error.code === 'RECOVERY_SHARE_INVALID' ? 400 : 403);
    }
  });

  return router;
}

/** N and K checked before any event, each message beside its own field. */
function countProblem(values: { shares: string; threshold: string }): Record<string, string> | null {
  const whole = (text: string) => (/^\d{1,3}$/.test(text.trim()) ? Number(text) : NaN);
  const [shares, threshold] = [whole(values.shares), whole(values.threshold)];
  if (!(shares >= MIN_SHARES && shares <= MAX_SHARES)) return { shares: `The number of shares must be a whole number from ${MIN_SHARES} to ${MAX_SHARES}.` };
  if (!(threshold >= 2 && threshold <= shares)) return { threshold: `The shares needed must be a whole number from 2 to the number of shares (${shares}): it must not exceed the number of shares.` };
  return null;
}

/** A message from the crypto code as a sentence on the page. */
export function sentence(message: string): string {
  const text = message.trim();
  return text === '' ? text : `${text[0]!.toUpperCase()}${text.slice(1)}${/[.!?)]$/.test(text) ? '' : '.'}`;
}
