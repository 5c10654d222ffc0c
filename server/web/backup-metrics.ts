import type { BackupSchedule } from '../backup-schedule';
import { BackupStatus, readBackupStatus } from '../backup-status';
import type { Logger } from './logger';
import type { WebMetrics } from './metrics';
import { loggableError } from './web-errors';

/**
 * Feeds the backup and drill gauges to /metrics from the database (every process's runs), read at
 * most once per interval however often /metrics is scraped; a failed reading keeps the last values.
 */
export class BackupMetrics {
  private readAt = 0;
  private reading: Promise<void> | null = null;
  private last: BackupStatus | null = null;

  constructor(
    private readonly schedule: BackupSchedule,
    private readonly metrics: WebMetrics,
    private readonly logger: Logger,
    private readonly intervalMs: number,
  ) {}

  /** The status as the status page and the Backups page show it (read fresh). */
  async status(now: Date = new Date()): Promise<BackupStatus | null> {
    if (!(await this.schedule.runs.tableExists())) return null;
    const status = await readBackupStatus(this.schedule.runs, this.schedule.config, now);
    this.metrics.observeBackups(status);
    return status;
  }

  /**
   * The status read at most one interval ago: the status page under load reads the runs once per
   * interval, not per request (the Backups page reads fresh, after a backup made there).
   */
  async recent(now: Date = new Date()): Promise<BackupStatus | null> {
    await this.refresh(now);
    return this.last;
  }

  async refresh(now: Date = new Date()): Promise<void> {
    if (now.getTime() - this.readAt < this.intervalMs && now.getTime() >= this.readAt) return;
    this.reading ??= this.status(now)
      .then((status) => {
        this.last = status;
        this.readAt = now.getTime();
      })
      .catch((error: unknown) => this.logger.debug({ error: loggableError(error) }, 'the backup runs could not be read for /metrics'))
      .finally(() => {
        this.reading = null;
      });
    await this.reading;
  }
}
