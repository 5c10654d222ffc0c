import type { Knex } from 'knex';

/**
 * The storage type, token configuration and key material, kept in memory between lifecycle versions.
 * Only events change them (their effects write them, then the event commits), so a value read at one
 * lifecycle version stays right until the version moves: `observe` is told every version this process
 * reads (the web server's watcher polls it; this process's own events report theirs), and any change
 * drops every value. Writes through this process's repositories drop them at once, and again when
 * their transaction ends. Off until `enable`: a process that does not watch the lifecycle reads fresh,
 * and so does one whose last reading of the version is older than the age it was enabled with.
 */
export class ConfigCache {
  /** How long a reading of the version vouches for the kept values; null: caching is off. */
  private maxAgeMs: number | null = null;
  private version: string | null = null;
  private observedAt = 0;
  private generation = 0;
  private readonly values = new Map<string, unknown>();

  /** Keep values while the version was read within `maxAgeMs` (its watcher's interval, with slack). */
  enable(maxAgeMs: number): void {
    this.maxAgeMs = maxAgeMs;
  }

  disable(): void {
    this.maxAgeMs = null;
    this.invalidate();
  }

  /** A lifecycle version ("revision:chain head") as just read from the database. */
  observe(version: string | null): void {
    this.observedAt = Date.now();
    if (version === this.version) return;
    this.version = version;
    this.invalidate();
  }

  invalidate(): void {
    this.generation += 1;
    this.values.clear();
  }

  /** Drops the values now and when `trx` ends: a read that raced the transaction may have kept its old state. */
  invalidateAfter(trx: Knex | undefined): void {
    this.invalidate();
    const ending = (trx as Knex.Transaction | undefined)?.executionPromise;
    if (ending)
      void ending.then(
        () => this.invalidate(),
        () => this.invalidate(),
      );
  }

  async get<T>(name: string, read: () => Promise<T>): Promise<T> {
    // Unwatched, or the watcher has not read the version lately (the database is not answering it).
    if (this.maxAgeMs === null || Date.now() - this.observedAt > this.maxAgeMs) return read();
    if (this.values.has(name)) return this.values.get(name) as T;
    const generation = this.generation;
    const value = await read();
    // Kept only if nothing changed while it was read.
    if (generation === this.generation) this.values.set(name, value);
    return value;
  }
}
