import type { BackupRun, BackupRunKind, BackupRunRepository } from '../db/repositories/backup-run-repository';
import { ageSeconds, describeAge } from './rotation-policy';

/** Where backups (or drills) stand: the last success and its age, the last outcome, and what is wrong. */
export interface RunSummary {
  kind: BackupRunKind;
  /** The newest finished run, ok or failed. */
  last: BackupRun | null;
  lastSuccess: BackupRun | null;
  running: BackupRun | null;
  /** Age of the last success, in seconds and for people; null when there was none. */
  ageSeconds: number | null;
  age: string | null;
  maxAgeSeconds: number | null;
  stale: boolean;
  failed: boolean;
  /** Sentences for the operator, empty when all is well. */
  problems: string[];
}

export interface BackupStatus {
  backup: RunSummary;
  drill: RunSummary;
}

const NAMES: Record<BackupRunKind, { one: string }> = { backup: { one: 'backup' }, drill: { one: 'restore drill' } };

/** A run left "running" longer than this is not shown as in progress (its process is gone, or the row came with a restored archive). */
const RUNNING_SHOWN_SECONDS = 6 * 3600;

export function summarize(kind: BackupRunKind, latest: { finished: BackupRun | null; succeeded: BackupRun | null; running: BackupRun | null }, maxAgeSeconds: number | null, now: Date): RunSummary {
  const { finished: last, succeeded: lastSuccess } = latest;
  const running = latest.running && ageSeconds(latest.running.startedAt, now) < RUNNING_SHOWN_SECONDS ? latest.running : null;
  const age = lastSuccess ? ageSeconds(lastSuccess.finishedAt ?? lastSuccess.startedAt, now) : null;
  const stale = maxAgeSeconds !== null && (age === null || age > maxAgeSeconds);
  const failed = last?.status === 'failed';
  const name = NAMES[kind];
  const problems: string[] = [];
  if (failed) problems.push(`The last ${name.one} failed (${last.finishedAt ?? last.startedAt}): ${sentence(last.message ?? 'no reason was recorded')}`);
  if (stale)
    problems.push(
      age === null
        ? `There has been no successful ${name.one} yet, and one is expected at least every ${describeAge(maxAgeSeconds)}.`
        : `The last successful ${name.one} is ${describeAge(age)} old: older than the ${describeAge(maxAgeSeconds)} allowed.`,
    );
  return { kind, last, lastSuccess, running, ageSeconds: age, age: age === null ? null : describeAge(age), maxAgeSeconds, stale, failed, problems };
}

export async function readBackupStatus(runs: BackupRunRepository, limits: { backupMaxAgeSeconds: number | null; drillMaxAgeSeconds: number | null }, now: Date = new Date()): Promise<BackupStatus> {
  const [backup, drill] = await Promise.all([runs.latest('backup'), runs.latest('drill')]);
  return { backup: summarize('backup', backup, limits.backupMaxAgeSeconds, now), drill: summarize('drill', drill, limits.drillMaxAgeSeconds, now) };
}

function sentence(message: string): string {
  const text = message.trim();
  return `${text[0]?.toUpperCase() ?? ''}${text.slice(1)}${/[.!?)]$/.test(text) ? '' : '.'}`;
}
