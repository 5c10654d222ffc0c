import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Router } from 'express';
import type { NextFunction, Request, Response } from 'express';
import { isBackupArchiveError, verifyArchive, VerifiedArchive } from '../../../backup';
import { safeErrorMessage } from '../../../db/driver-errors';
import { archiveNameOf, scheduledArchives } from '../../backup-schedule';
import { isAdmin, requireAdmin } from '../access';
import { field, FormState, renderPage } from '../render';
import type { WebDeps } from '../web-deps';
import { PATHS } from '../wizard-paths';
import { checkNewPassword, PASSWORD_RULES } from './password-form';

export const BACKUP_PATHS = { page: '/backups', download: '/backups/download', verify: '/backups/verify' } as const;

/**
 * An archive to verify is larger than any other form but the restore's: its body is read only for a
 * logged-in administrator, so that nobody else can make keyward store it, let alone reach its key
 * derivation. Others go to the login page, as every admin page sends them.
 */
export function backupVerifyGate(req: Request, res: Response, next: NextFunction): void {
  if (req.method !== 'POST' || !req.is('multipart/form-data') || isAdmin(req)) return next();
  res.redirect(303, PATHS.login);
}

/** "The archive's passphrase is wrong" as the page says it. */
function sentence(message: string): string {
  const text = message.trim();
  return `${text[0]?.toUpperCase() ?? ''}${text.slice(1)}${/[.!?)]$/.test(text) ? '' : '.'}`;
}

/**
 * Backups for an administrator (docs/web.md "Backups"): make one and download it, verify an archive
 * without restoring it, and see the last backup and the last restore drill with their age, the
 * schedule and its history. Everything goes through backup/ and effects/ as the CLI does.
 */
export function backupRoutes(deps: WebDeps, router: Router = Router()): Router {
  const { backups } = deps;

  const render = async (req: Request, res: Response, form: FormState & { form?: string; verified?: (VerifiedArchive & { filename: string }) | null } = {}, status = 200) => {
    const migrated = await backups.runs.tableExists();
    const [summary, history, archives] = await Promise.all([
      migrated ? deps.backupMetrics.status() : null,
      migrated ? backups.runs.recent(12) : [],
      backups.config.schedule ? scheduledArchives(backups.config.dir).catch(() => []) : [],
    ]);
    renderPage(
      deps,
      req,
      res,
      'backups',
      {
        title: 'Backups',
        summary,
        history,
        schedule: { ...backups.config, next: backups.nextRun?.toISOString() ?? null, archives },
        passwordRules: PASSWORD_RULES,
        maxMiB: deps.config.restoreUploadBytes / 1048576,
        form: null,
        verified: null,
        ...form,
      },
      status,
    );
  };

  router.get(BACKUP_PATHS.page, ...requireAdmin(deps), async (req, res) => render(req, res));

  router.post(BACKUP_PATHS.download, ...requireAdmin(deps), async (req, res) => {
    const form = 'download';
    const passphrase = field(req, 'passphrase');
    const problem = checkNewPassword(passphrase, field(req, 'passphraseConfirm'), 'archive passphrase');
    if (problem) return render(req, res, { form, errors: { [problem.field === 'password' ? 'passphrase' : 'passphraseConfirm']: sentence(problem.message) } }, 400);
    const node = backups.nodeIdentity;
    const id = await backups.runs.begin('backup', 'web', node, new Date().toISOString());
    const name = archiveNameOf(new Date());
    // Written to a private file first (never held in memory), then streamed: a failure before the
    // first byte is a message on the page, not a broken download.
    const path = join(deps.config.uploadsDir, `backup-${randomBytes(12).toString('hex')}.kwbak`);
    try {
      const result = await deps.work.track(deps.runtime.backup(path, passphrase));
      res.attachment(name);
      res.type('application/octet-stream');
      res.setHeader('Content-Length', String((await stat(path)).size));
      await pipeline(createReadStream(path), res);
      await backups.runs.finish(id, {
        status: 'ok',
        finishedAt: new Date().toISOString(),
        archive: name,
        size: result.size,
        message: `downloaded by ${req.ip ?? 'a browser'}, ${result.manifest.entries.length} entries`,
      });
      deps.logger.info({ archive: name, size: result.size }, 'a backup was made and downloaded from the web');
    } catch (error) {
      const message = safeErrorMessage(error);
      await backups.runs.finish(id, { status: 'failed', finishedAt: new Date().toISOString(), archive: name, message }).catch(() => undefined);
      deps.logger.error({ error: message }, 'a backup from the web failed');
      if (!res.headersSent) return render(req, res, { form, formError: `The backup failed: ${sentence(message)}` }, 500);
      res.destroy();
    } finally {
      await rm(path, { force: true });
    }
  });

  router.post(BACKUP_PATHS.verify, ...requireAdmin(deps), async (req, res) => {
    const form = 'verify';
    const archive = req.uploads?.archive;
    const passphrase = field(req, 'passphrase');
    const errors: Record<string, string> = {};
    if (!archive) errors.archive = 'Choose the archive file to verify.';
    if (passphrase === '') errors.passphrase = 'Enter the archive passphrase.';
    if (!archive || passphrase === '') return render(req, res, { form, errors }, 400);
    let describe = (message: string) => message;
    try {
      const verified = await deps.uploads.with([archive], async ([path], describeUpload) => {
        describe = describeUpload;
        return verifyArchive(path!, passphrase, { kdfCeiling: deps.runtime.config.kdfCeiling });
      });
      const intact = verified.entries.every((entry) => entry.ok);
      return render(
        req,
        res,
        { form, verified: { ...verified, filename: archive.filename || 'the archive' }, formError: intact ? null : 'The archive does not match its manifest: do not rely on it.' },
        intact ? 200 : 422,
      );
    } catch (error) {
      if (isBackupArchiveError(error)) {
        const target = error.code === 'WRONG_PASSPHRASE' ? 'passphrase' : 'archive';
        const message =
          error.code === 'WRONG_PASSPHRASE' ? 'The passphrase does not open this archive (or the archive is damaged at its start). Nothing was changed.' : sentence(describe(error.message));
        return render(req, res, { form, errors: { [target]: message } }, 422);
      }
      throw error;
    }
  });

  return router;
}
