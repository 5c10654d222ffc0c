import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { Cron } from 'croner';
import { BackupRunRepository, RunNode } from '../db/repositories/backup-run-repository';
import { safeErrorMessage } from '../db/driver-errors';
import { childEnvironment } from '../effects/child-env';
import type { DrillReport } from '../effects/restore-drill';
import type { KeywardRuntime } from './runtime';
import type { BackupScheduleConfig } from './web/web-config';
import { phaseOf } from './web/lifecycle-phase';

/** What a scheduled run reports to the server's log (never a passphrase: there is none in these). */
export interface ScheduleLog {
  info(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

/** Archives the schedule writes, and the only files its retention ever deletes. */
const ARCHIVE_NAME = /^keyward-\d{8}T\d{6}Z\.kwbak$/;

export function archiveNameOf(slot: Date): string {
  return `keyward-${slot
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '')}.kwbak`;
}

/** The schedule's archives in the directory, newest first (their names sort by time). */
export async function scheduledArchives(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  return names
    .filter((name) => ARCHIVE_NAME.test(name))
    .sort()
    .reverse();
}

/** Keeps the newest `keep` archives of the schedule; returns the names removed. */
export async function applyRetention(dir: string, keep: number): Promise<string[]> {
  const removed = (await scheduledArchives(dir)).slice(keep);
  for (const name of removed) await rm(join(dir, name), { force: true });
  return removed;
}

/** A secret file's content without its final newline; a clear error naming the variable, never the content. */
async function readSecretFile(path: string, variable: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`${variable} (${path}) cannot be read: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, { cause: error });
  }
  const value = text.replace(/\r?\n$/, '');
  if (value === '') throw new Error(`${variable} (${path}) is empty`);
  return value;
}

/** The variables a drill's process may need besides the basics: the Argon2id limits. Nothing secret. */
const DRILL_VARIABLES = [
  'KEYWARD_ARGON2_MEMORY_KIB',
  'KEYWARD_ARGON2_ITERATIONS',
  'KEYWARD_ARGON2_PARALLELISM',
  'KEYWARD_KDF_MAX_MEMORY_KIB',
  'KEYWARD_KDF_MAX_ITERATIONS',
  'KEYWARD_KDF_MAX_PARALLELISM',
] as const;

/**
 * `keyward drill` in a process of its own: the drill loads a scratch SoftHSM token directory, which a
 * PKCS#11 module already initialized in this process (the server's own token) would not see. The
 * passphrase and the backup password go to it on stdin, never in its arguments or environment.
 */
export async function drillInChild(archive: string, passphrase: string, backupPassword: string, env: NodeJS.ProcessEnv = process.env): Promise<DrillReport> {
  const cli = join(__dirname, 'cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: the drill runs the built keyward`);
  const extra: Record<string, string> = {};
  for (const name of DRILL_VARIABLES) if (env[name]) extra[name] = env[name]!;
  const child = spawn(process.execPath, [cli, 'drill', '--input', archive, '--json'], { env: childEnvironment(extra, env), stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const closed = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  child.stdin.end(`${passphrase}\n${backupPassword}\n`);
  const code = await closed;
  const line = stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as DrillReport;
  } catch {
    const said = stderr
      .trim()
      .split('\n')
      .find((text) => text.startsWith('keyward: '));
    throw new Error(`the drill process ended (exit ${code}) without a report${said ? `: ${said.slice(9)}` : ''}`);
  }
}

/** The first failed step of a drill report, as a sentence; or what was proven. */
function drillMessage(report: DrillReport): string {
  const failed = report.steps.find((step) => !step.ok);
  if (failed) return `the step "${failed.step}" failed: ${failed.detail}`;
  if (!report.scratchDestroyed) return `the scratch store ${report.scratchHome} was not destroyed`;
  return `${report.steps.length} steps passed, RTO ${report.rtoSeconds.toFixed(1)} s`;
}

/**
 * Scheduled backups (docs/deployment.md "Scheduled backups"): at each time of the cron pattern, one
 * process of the deployment claims the slot in the database (backup_runs), writes an archive into the
 * backup directory, keeps the newest `keep`, and runs a restore drill on the newest. Every process
 * sharing the database runs the timer; the claim makes each slot run once. History and outcomes are
 * in the database, so they survive restarts, and the status page and /metrics read them from there.
 */
export class BackupSchedule {
  readonly runs: BackupRunRepository;
  private job: Cron | null = null;
  private running: Promise<void> | null = null;
  private readonly node: RunNode;

  constructor(
    private readonly runtime: KeywardRuntime,
    readonly config: BackupScheduleConfig,
    private readonly log: ScheduleLog,
    private readonly track: <T>(work: Promise<T>) => Promise<T> = (work) => work,
  ) {
    this.runs = new BackupRunRepository(runtime.store.db, runtime.config.deployment);
    this.node = { host: hostname(), pid: process.pid, home: runtime.config.home };
  }

  get nodeIdentity(): RunNode {
    return this.node;
  }

  get nextRun(): Date | null {
    return this.job?.nextRun() ?? (this.config.schedule ? new Cron(this.config.schedule).nextRun() : null);
  }

  /** Marks what this home's earlier process left running as interrupted, then arms the timer (if a schedule is configured). */
  async start(): Promise<void> {
    if (await this.runs.tableExists()) {
      const processStartedAt = new Date(Date.now() - process.uptime() * 1000).toISOString();
      const interrupted = await this.runs.markInterrupted(this.node, processStartedAt, new Date().toISOString());
      if (interrupted > 0) this.log.error({ interrupted }, 'backup runs of an earlier process of this home were interrupted');
    }
    if (!this.config.schedule || this.job) return;
    // protect: a run still going when the next time comes lets that time pass here (another process may take it).
    this.job = new Cron(this.config.schedule, { protect: true, unref: true }, () => this.fire());
    this.log.info({ schedule: this.config.schedule, dir: this.config.dir, keep: this.config.keep, next: this.job.nextRun()?.toISOString() ?? null }, 'backup schedule armed');
    await this.catchUp();
  }

  /**
   * A scheduled time that passed while no process of the deployment ran: the latest one is run now
   * (claimed, so once), if the schedule had run before it; one backup stands for every time missed.
   * A deployment whose schedule never ran (a new one, or a new pattern's first start) waits for its
   * next time.
   */
  private async catchUp(): Promise<void> {
    const missed = this.job?.previousRuns(1, new Date())[0];
    if (!missed || !(await this.runs.tableExists())) return;
    const last = await this.runs.lastScheduledSlot('backup');
    if (!last || Date.parse(last) >= missed.getTime()) return;
    this.log.info({ slot: missed.toISOString(), lastScheduled: last }, 'a scheduled backup time passed while no keyward process ran: it runs now');
    this.running = this.track(this.runSlot(missed)).finally(() => (this.running = null));
  }

  /** Stops the timer; a run in progress finishes (the caller's work tracker waits for it). */
  stop(): void {
    this.job?.stop();
    this.job = null;
  }

  private fire(): Promise<void> {
    // The time the pattern named (croner calls a few milliseconds after it): the same on every process.
    const slot = this.job?.previousRuns(1, new Date(Date.now() + 1))[0] ?? new Date(Math.floor(Date.now() / 1000) * 1000);
    this.running = this.track(this.runSlot(slot)).finally(() => (this.running = null));
    return this.running;
  }

  /** One scheduled time: claimed, then the backup, the retention and the drill. Never throws. */
  async runSlot(slot: Date): Promise<void> {
    const slotIso = slot.toISOString();
    try {
      if (!(await this.runs.tableExists())) return; // a store not yet migrated (before the first BOOT of this version)
      const startedAt = new Date().toISOString();
      const id = await this.runs.claim('backup', slotIso, this.node, startedAt);
      if (id === null) return; // another process of the deployment took this time
      const archive = await this.backup(id, slot);
      if (!archive) return;
      await this.drill(slotIso, archive);
    } catch (error) {
      this.log.error({ slot: slotIso, error: safeErrorMessage(error) }, 'the scheduled backup could not be recorded');
    }
  }

  private async backup(id: number, slot: Date): Promise<{ path: string; passphrase: string } | null> {
    const { dir, keep, passphraseFile } = this.config;
    const name = archiveNameOf(slot);
    try {
      const inspection = await this.runtime.engine.inspect({ historyLimit: 0 });
      if (phaseOf(inspection.state) !== 'operational') throw new Error(`keyward is not operational (state ${inspection.state}): no backup was made`);
      const passphrase = await readSecretFile(passphraseFile!, 'KEYWARD_BACKUP_PASSPHRASE_FILE');
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const path = join(dir, name);
      const result = await this.runtime.backup(path, passphrase);
      const removed = await applyRetention(dir, keep);
      const message = `${result.manifest.entries.length} entries${result.logChainIntact ? '' : ', the transition log chain was broken when it was taken'}${removed.length ? `; ${removed.length} older archive${removed.length === 1 ? '' : 's'} removed (keeping ${keep})` : ''}`;
      await this.runs.finish(id, { status: 'ok', finishedAt: new Date().toISOString(), archive: name, size: result.size, message });
      this.log.info({ archive: path, size: result.size, removed }, 'scheduled backup made');
      return { path, passphrase };
    } catch (error) {
      const message = safeErrorMessage(error);
      await this.runs.finish(id, { status: 'failed', finishedAt: new Date().toISOString(), archive: name, message });
      this.log.error({ archive: name, error: message }, 'the scheduled backup failed');
      return null;
    }
  }

  private async drill(slotIso: string, archive: { path: string; passphrase: string }): Promise<void> {
    const id = await this.runs.claim('drill', slotIso, this.node, new Date().toISOString());
    if (id === null) return;
    const name = basename(archive.path);
    try {
      if (!this.config.drillPasswordFile) throw new Error('KEYWARD_DRILL_PASSWORD_FILE is not set: the drill needs the backup password for its auto-restore');
      const password = await readSecretFile(this.config.drillPasswordFile, 'KEYWARD_DRILL_PASSWORD_FILE');
      const report = await drillInChild(archive.path, archive.passphrase, password);
      const ok = report.ok && report.scratchDestroyed;
      await this.runs.finish(id, { status: ok ? 'ok' : 'failed', finishedAt: new Date().toISOString(), archive: name, rtoSeconds: report.rtoSeconds, message: drillMessage(report) });
      if (ok) this.log.info({ archive: name, rtoSeconds: report.rtoSeconds }, 'scheduled restore drill passed');
      else this.log.error({ archive: name, error: drillMessage(report) }, 'the scheduled restore drill failed');
    } catch (error) {
      const message = safeErrorMessage(error);
      await this.runs.finish(id, { status: 'failed', finishedAt: new Date().toISOString(), archive: name, message });
      this.log.error({ archive: name, error: message }, 'the scheduled restore drill failed');
    }
  }
}
