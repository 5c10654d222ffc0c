import { Router } from 'express';
import type { Request, RequestHandler, Response } from 'express';
import { GCM_ENCRYPTION_LIMIT } from '../../../crypto/dek-keyring';
import { isHsmStorage } from '../../../hsm/storage-type';
import type { KeyRotation } from '../../../machines/lifecycle-machine';
import type { Inspection, SendResult } from '../../lifecycle-engine';
import { ageSeconds, describeAge, reencryptionRate, RotationKey, rotationsDue } from '../../rotation-policy';
import { inspectionOf, isAdmin, readLifecycle, requireAdmin } from '../access';
import { phaseOf } from '../lifecycle-phase';
import { field, FormState, renderPage } from '../render';
import { contextOf } from '../request-context';
import type { RunningRotation } from '../rotation-runner';
import { failureOf, sendEvent, sourceOf } from '../web-events';
import type { WebDeps } from '../web-deps';
import { PATHS } from '../wizard-paths';
import { checkNewPassword } from './password-form';

/** The steps of each rotation as the machine records them (machines/lifecycle-machine.ts), in order, for people. */
const STEPS: Record<RotationKey, Array<[string, string]>> = {
  kek: [
    ['generating', 'generating a new KEK in the token'],
    ['wrapping', 'wrapping every DEK under the new KEK'],
    ['destroyingOldKek', 'destroying the old KEK'],
  ],
  dek: [
    ['adding', 'adding a new DEK'],
    ['promoting', 'making the new DEK the one new values are written with'],
    ['reencrypting', 're-encrypting the stored values under the new DEK'],
    ['retiring', 'retiring the old DEK'],
  ],
};

const DONE: Record<string, string> = {
  kek: 'The KEK was rotated: a new KEK wraps every DEK and the old one was destroyed.',
  dek: 'The DEK was rotated: every value is encrypted under the new DEK and the old one is retired.',
  'backup-password': 'The backup password was changed: the old one opens nothing any more.',
  'token-pin': 'The token’s user PIN was changed, in the token and in the PIN file.',
};

/** Where a rotation stands: what the page shows and /keys/progress.json answers. */
export interface RotationProgress {
  state: string;
  revision: number | null;
  /** The rotation the machine records as under way (after a crash too), or null. */
  rotation: (KeyRotation & { stepNumber: number; steps: number; stepLabel: string; rollingBack: boolean }) | null;
  /** The rotation this process is running in its background, or null. */
  running: RunningRotation | null;
  reencryption: { targetKeyId: string; valuesDone: number; valuesTotal: number; valuesLeft: number; valuesPerSecond: number; startedAt: string; updatedAt: string; finishedAt: string | null } | null;
  /** 0…1 for the progress bar. */
  fraction: number;
  /** A rotation stopped on an error and waits to be resumed (its event again). */
  failed: boolean;
  finished: boolean;
  lastError: { code: string; message: string; at: string } | null;
  summary: string;
}

async function progressOf(deps: WebDeps, inspection: Inspection): Promise<RotationProgress> {
  const recorded = inspection.context.keyRotation;
  const running = deps.rotations.current;
  const failed = recorded !== null && /^rotating(Kek|Dek)\.failed$/.test(inspection.state);
  let rotation: RotationProgress['rotation'] = null;
  let fraction = 0;
  let reencryption: RotationProgress['reencryption'] = null;
  if (recorded) {
    const steps = STEPS[recorded.kind];
    const index = Math.max(
      0,
      steps.findIndex(([step]) => step === recorded.step),
    );
    rotation = { ...recorded, stepNumber: index + 1, steps: steps.length, stepLabel: steps[index]![1], rollingBack: inspection.state === 'rotatingKek.rollingBack' };
    fraction = index / steps.length;
    const job = recorded.kind === 'dek' ? await deps.runtime.store.reencryption.status() : null;
    if (job && job.targetKeyId === recorded.newKeyId) {
      const rate = reencryptionRate(job);
      reencryption = { ...job, valuesLeft: rate.valuesLeft, valuesPerSecond: rate.valuesPerSecond };
      // The re-encryption is the long step: it fills its own quarter of the bar as it goes.
      if (recorded.step === 'reencrypting') fraction = (index + rate.fraction) / steps.length;
    }
  }
  const lastError = inspection.context.lastError && { code: inspection.context.lastError.code, message: inspection.context.lastError.message, at: inspection.context.lastError.at };
  const finished = recorded === null && running === null;
  return {
    state: inspection.state,
    revision: inspection.revision,
    rotation,
    running,
    reencryption,
    fraction: finished ? 1 : fraction,
    failed,
    finished,
    lastError,
    summary: summaryOf(rotation, running, reencryption, failed),
  };
}

function summaryOf(rotation: RotationProgress['rotation'], running: RunningRotation | null, job: RotationProgress['reencryption'], failed: boolean): string {
  if (!rotation) return running ? `The ${running.kind.toUpperCase()} rotation is starting.` : 'No rotation is under way.';
  const what = `${rotation.kind.toUpperCase()} rotation`;
  if (failed) return `The ${what} stopped at step ${rotation.stepNumber} of ${rotation.steps} (${rotation.stepLabel}): resume it.`;
  if (rotation.rollingBack) return `The ${what} failed and is being rolled back: the new KEK is destroyed, the old one stays.`;
  let text = `Step ${rotation.stepNumber} of ${rotation.steps}: ${rotation.stepLabel}`;
  if (rotation.step === 'reencrypting' && job) {
    text += ` — ${job.valuesDone.toLocaleString('en')} of ${job.valuesTotal.toLocaleString('en')} values`;
    if (job.valuesPerSecond > 0) text += ` (${Math.round(job.valuesPerSecond).toLocaleString('en')} per second)`;
  }
  if (!running) text += '. Not running in this process: it resumes at the next start, or with its button below.';
  return `${text}.`;
}

/**
 * The key lifecycle for an administrator (docs/web.md "Keys"): the keyset, the KEK, the backup key,
 * a rotation under way with its progress, and the four operations. A rotation runs in the background
 * (it can take minutes): the form returns as soon as the machine has taken the event, and the page's
 * script (/static/js/keys.js) follows /keys/progress.json.
 */
export function keyRoutes(deps: WebDeps, router: Router = Router()): Router {
  const { store, config } = deps.runtime;

  const render = async (req: Request, res: Response, form: FormState & { form?: string } = {}, status = 200, inspection: Inspection = inspectionOf(res)) => {
    const now = new Date();
    const storageType = await store.storage.storageType();
    const hsm = isHsmStorage(storageType);
    const all = hsm ? await store.keyMaterial.all() : [];
    const order = { primary: 0, pending: 1, active: 2, retired: 3 } as const;
    const live = all.filter((record) => record.state !== 'retired').sort((a, b) => order[a.state] - order[b.state]);
    const retired = all.filter((record) => record.state === 'retired').reverse();
    const primary = live.find((record) => record.state === 'primary') ?? null;
    const backupKey = hsm ? await store.keyMaterial.backupKey() : null;
    const backup = backupKey ? 'key' : live.length > 0 && live.every((record) => record.backupCopy) ? 'copies' : 'none';
    const recoverySet = hsm ? await store.keyMaterial.recoveryShareSet() : null;
    const progress = await progressOf(deps, inspection);
    const running = progress.running;
    const may = (type: string) => hsm && running === null && inspection.accepts.includes(type);
    const age = (iso: string) => describeAge(ageSeconds(iso, now));
    // A rotation this browser started may have ended before the page was read: then it is done (or failed).
    const started = req.query.started === 'kek' || req.query.started === 'dek' ? req.query.started : null;
    const ended = started && progress.finished ? (progress.lastError ? null : started) : null;
    const doneKey = typeof req.query.done === 'string' && Object.hasOwn(DONE, req.query.done) ? req.query.done : ended;
    const done = doneKey ? DONE[doneKey] : null;
    renderPage(
      deps,
      req,
      res,
      'keys',
      {
        title: 'Keys',
        inspection,
        hsm,
        storageType,
        live: live.map((record) => ({ ...record, age: age(record.createdAt), share: record.gcmEncryptions / GCM_ENCRYPTION_LIMIT })),
        retired: retired.map((record) => ({ ...record, age: age(record.createdAt) })),
        gcmLimit: GCM_ENCRYPTION_LIMIT,
        policyLimit: config.rotation.dekMaxEncryptions,
        kek: primary?.wrapped ? { label: primary.wrapped.kek.label, id: primary.wrapped.kek.id, createdAt: primary.kekCreatedAt, age: age(primary.kekCreatedAt) } : null,
        backup,
        recoverySet,
        due: rotationsDue(live, now, config.rotation),
        progress,
        active: (progress.rotation !== null && !progress.failed) || running !== null,
        // Stopped on an error, or interrupted and run by no process now: its own event resumes it.
        resume: progress.rotation && running === null && (progress.failed || inspection.state === 'operational') ? progress.rotation.kind : null,
        may: {
          rotateKek: may('ROTATE_KEK'),
          rotateDek: may('ROTATE_DEK'),
          changeBackupPassword: may('CHANGE_BACKUP_PASSWORD'),
          changeTokenPin: may('CHANGE_TOKEN_PIN'),
        },
        passwordFailures: inspection.context.passwordFailures,
        done,
        form: null,
        ...form,
      },
      status,
    );
  };

  router.get(PATHS.keys, ...requireAdmin(deps), async (req, res) => render(req, res));

  const json: RequestHandler = (req, res, next) => {
    if (!isAdmin(req)) return res.status(401).json({ error: 'log in again to follow the rotation' });
    if (phaseOf(inspectionOf(res).state) !== 'operational') return res.status(409).json({ error: 'keyward is not operational', state: inspectionOf(res).state });
    next();
  };
  router.get(`${PATHS.keys}/progress.json`, readLifecycle(deps), json, async (_req, res) => {
    res.json(await progressOf(deps, inspectionOf(res)));
  });

  /** Another rotation in this process would queue behind the running one in the engine: say so instead. */
  const busy = (req: Request, res: Response, form: string) => {
    const running = deps.rotations.current;
    if (!running) return false;
    void render(req, res, { form, formError: `A ${running.kind.toUpperCase()} rotation is running (since ${running.startedAt}): wait until it has finished.` }, 409);
    return true;
  };

  const rotate = (kind: RotationKey) =>
    (async (req, res) => {
      const form = kind === 'kek' ? 'rotate-kek' : 'rotate-dek';
      if (kind === 'dek' && field(req, 'confirm') !== 'yes') {
        return render(req, res, { form, errors: { confirm: 'Tick “I understand” to confirm the DEK rotation.' } }, 400);
      }
      if (busy(req, res, form)) return;
      const before = (await deps.runtime.engine.inspect({ historyLimit: 0 })).revision;
      const start = deps.rotations.start(kind, sourceOf(req));
      if (!start.started) return busy(req, res, form);
      let settled: SendResult | null;
      try {
        settled = await firstStep(deps, start.done, before);
      } catch (error) {
        // The engine did not take the event (busy with another process's effect, an outage).
        return render(req, res, { form, formError: (error as Error).message }, 409, (await deps.watcher.poll()) ?? inspectionOf(res));
      }
      const after = (await deps.watcher.poll()) ?? inspectionOf(res);
      const failure = settled && failureOf(settled, { mainField: 'rotation', fields: ['rotation'] });
      if (failure) return render(req, res, { form, formError: sentence(failure.message) }, failure.status, after);
      res.redirect(303, settled ? `${PATHS.keys}?done=${kind}` : `${PATHS.keys}?started=${kind}`);
    }) satisfies RequestHandler;

  router.post(`${PATHS.keys}/rotate-kek`, ...requireAdmin(deps), rotate('kek'));
  router.post(`${PATHS.keys}/rotate-dek`, ...requireAdmin(deps), rotate('dek'));

  router.post(`${PATHS.keys}/backup-password`, deps.rateLimits.backupPassword, ...requireAdmin(deps), async (req, res) => {
    const form = 'backup-password';
    const authorizeWith = field(req, 'authorizeWith') === 'admin' ? 'admin' : 'backup_password';
    const values = { authorizeWith };
    if (busy(req, res, form)) return;
    const authorizing = authorizeWith === 'admin' ? 'adminPassword' : 'currentPassword';
    const proof = field(req, authorizing);
    const password = field(req, 'password');
    const errors: Record<string, string> = {};
    if (proof === '') errors[authorizing] = authorizeWith === 'admin' ? 'Enter your administrator password.' : 'Enter the current backup password.';
    const problem = checkNewPassword(password, field(req, 'passwordConfirm'), 'new backup password');
    if (problem) errors[problem.field] = sentence(problem.message);
    if (Object.keys(errors).length > 0) return render(req, res, { form, values, errors }, 400);
    const username = contextOf(req).session?.adminUsername ?? '';
    // Only the secrets the chosen authority needs: the event refuses any other.
    const secrets: Record<string, string> = { password, [authorizing]: proof };
    const { result, after } = await sendEvent(deps, req, 'CHANGE_BACKUP_PASSWORD', { authorizeWith, username }, secrets);
    const failure = failureOf(result, { mainField: authorizing, fields: ['password', 'passwordConfirm', authorizing] });
    if (failure) {
      let message = sentence(failure.message);
      if (result.error?.code === 'WRONG_BACKUP_PASSWORD') {
        const failures = after?.context.passwordFailures ?? 0;
        message = `${authorizeWith === 'admin' ? 'Your administrator password is wrong' : 'The current backup password is wrong'}: nothing was changed (${failures} wrong password${failures === 1 ? '' : 's'} in a row; after 3, attempts are locked out for a while).`;
      }
      return render(req, res, { form, values, errors: { [failure.field]: message } }, failure.status, after ?? inspectionOf(res));
    }
    res.redirect(303, `${PATHS.keys}?done=backup-password`);
  });

  router.post(`${PATHS.keys}/token-pin`, ...requireAdmin(deps), async (req, res) => {
    const form = 'token-pin';
    if (busy(req, res, form)) return;
    const pin = field(req, 'pin');
    const errors: Record<string, string> = {};
    if (pin === '') errors.pin = 'Enter the new user PIN.';
    else if (field(req, 'pinConfirm') !== pin) errors.pinConfirm = 'The two new user PINs differ: type the same one twice.';
    if (Object.keys(errors).length > 0) return render(req, res, { form, errors }, 400);
    const { result, after } = await sendEvent(deps, req, 'CHANGE_TOKEN_PIN', {}, { pin });
    const failure = failureOf(result, { mainField: 'pin', fields: ['pin'] });
    if (failure) return render(req, res, { form, errors: { pin: sentence(failure.message) } }, failure.status, after ?? inspectionOf(res));
    res.redirect(303, `${PATHS.keys}?done=token-pin`);
  });

  return router;
}

/**
 * Waits until the machine has taken the rotation (its first transition is committed: the page then
 * shows it under way) or the send has ended (refused, or a rotation so small it is done already).
 * Never for the rotation itself. Returns the send's result if it ended, else null.
 */
async function firstStep(deps: WebDeps, done: Promise<SendResult>, before: number | null, timeoutMs = 5000): Promise<SendResult | null> {
  let outcome: { result: SendResult } | { error: unknown } | null = null;
  const watched = done.then(
    (result) => (outcome = { result }),
    (error: unknown) => (outcome = { error }),
  );
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await Promise.race([watched, new Promise((resolve) => setTimeout(resolve, 50))]);
    const ended = outcome as { result: SendResult } | { error: unknown } | null;
    if (ended) {
      if ('error' in ended) throw ended.error;
      return ended.result;
    }
    const now = await deps.runtime.engine.inspect({ historyLimit: 0 }).catch(() => null);
    if ((now && now.revision !== before) || Date.now() > deadline) return null;
  }
}

/** An engine message ("the backup password is wrong") as a sentence on the page. */
function sentence(message: string): string {
  const text = message.trim();
  if (text === '') return text;
  return `${text[0]!.toUpperCase()}${text.slice(1)}${/[.!?)]$/.test(text) ? '' : '.'}`;
}
