import { isHsmStorage } from '../../hsm/storage-type';
import type { KeywardRuntime } from '../runtime';
import type { Logger } from './logger';
import type { WebMetrics } from './metrics';
import { loggableError } from './web-errors';

/**
 * Feeds the keys' gauges (keyset, re-encryption job, rotation due) to /metrics. /metrics is public
 * and answered without a session: the database is read at most once per interval however often it
 * is scraped, and a reading that fails leaves the last values in place.
 */
export class KeyMetrics {
  private readAt = 0;
  private reading: Promise<void> | null = null;

  constructor(
    private readonly runtime: KeywardRuntime,
    private readonly metrics: WebMetrics,
    private readonly logger: Logger,
    private readonly intervalMs: number,
  ) {}

  async refresh(now: Date = new Date()): Promise<void> {
    if (now.getTime() - this.readAt < this.intervalMs) return;
    this.reading ??= this.read(now).finally(() => {
      this.reading = null;
    });
    await this.reading;
  }

  private async read(now: Date): Promise<void> {
    const { store, config } = this.runtime;
    try {
      const hsm = isHsmStorage(await store.storage.storageType());
      const [keyset, job] = hsm ? await Promise.all([store.keyMaterial.keyset(), store.reencryption.status()]) : [[], null];
      this.metrics.observeKeys(keyset, job, config.rotation, now);
      this.metrics.observeKekHealth(hsm ? await store.secondKek.health() : []);
      this.readAt = now.getTime();
    } catch (error) {
      // Before the first set-up, or a schema that predates the keyset (the next BOOT migrates it).
      this.logger.debug({ error: loggableError(error) }, 'the keys could not be read for /metrics');
    }
  }
}
