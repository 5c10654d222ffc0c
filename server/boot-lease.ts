import { randomBytes } from 'node:crypto';
import type { BootLeaseRepository, BootLeaseRow } from '../db/repositories/boot-lease-repository';

/*
 * Why a lease row rather than a PostgreSQL advisory lock: an advisory lock lives as long as its
 * connection, and PostgreSQL learns that a holder's host vanished (power, network) only when TCP
 * keepalive gives up, by default after hours; it also needs a connection held for the whole BOOT,
 * which a pooler in transaction mode (PgBouncer) does not keep, and SQLite has none. A row with an
 * expiry on the database's clock works on both engines, bounds a dead holder's hold to one lease
 * period, and shows who holds it. A holder that is only paused past its expiry can come back while
 * another BOOT runs: the lifecycle's revision compare-and-swap refuses its late commits, and every
 * effect is idempotent, so nothing is applied twice.
 */

export type DatabaseEngine = 'sqlite' | 'pg';

export interface LeaseSelf {
  holder: string;
  host: string;
  pid: number;
}

export type HolderVerdict = 'free' | 'mine' | 'live' | 'dead';

/**
 * Whether the lease's holder still holds it. PostgreSQL: only expiry tells (replicas run on other
 * hosts, or in containers with pid namespaces of their own). SQLite's file lives on one host: a holder
 * there is alive exactly while its process is, however late its renewal (one connection serializes
 * its statements behind a long transaction). A holder recorded under this process's own host and
 * pid but another lease id is a dead predecessor (containers reuse pid 1).
 */
export function holderVerdict(row: BootLeaseRow | null, self: LeaseSelf, engine: DatabaseEngine, pidAlive: (pid: number) => boolean): HolderVerdict {
  if (!row || row.holder === null) return 'free';
  if (row.holder === self.holder) return 'mine';
  if (row.host === self.host && row.pid === self.pid) return 'dead';
  if (engine === 'sqlite' && row.host === self.host && row.pid !== null) return pidAlive(row.pid) ? 'live' : 'dead';
  return row.expiresAt < row.now ? 'dead' : 'live';
}

/**
 * Whether a BOOT that ended under the lease decided for this process too: it ran to its end after
 * `startedAt` (this process's start, or this BOOT's for a later one, on the database's clock), in
 * another process. A process never follows its own earlier BOOT: a retry is asked to look again.
 */
export function decidedForUs(row: BootLeaseRow | null, startedAt: number, self: { host: string; pid: number }): boolean {
  return row !== null && row.decidedAt > 0 && row.decidedAt >= startedAt && row.decidedBy !== `${self.host}:${self.pid}`;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface HeldLease {
  readonly holder: string;
  /** Another process's BOOT released the lease after deciding, after this process (or this BOOT) started. */
  readonly decidedSinceStart: boolean;
  /** Gives the lease up; `decided`: a BOOT ran to its end under it. */
  release(decided: boolean): Promise<void>;
}

export interface BootLeaseOptions {
  engine: DatabaseEngine;
  host: string;
  pid: number;
  /** How long a holder that stops renewing keeps the lease. */
  ttlMs: number;
  /** How often a waiting process asks again. */
  pollMs?: number;
  /** Told once when this process starts waiting for another holder. */
  onWait?: (holder: { host: string | null; pid: number | null }) => void;
  /** Told when a renewal finds the lease taken (this holder was presumed dead). */
  onLost?: () => void;
}

/** One BOOT decides at a time (docs/lifecycle.md "The engine"): the holder renews while its BOOT runs. */
export class BootLease {
  /** Released when this process's current holder releases: a process holds the lease once at a time. */
  private local: Promise<void> = Promise.resolve();

  constructor(
    private readonly repository: BootLeaseRepository,
    private readonly deployment: string,
    private readonly options: BootLeaseOptions,
  ) {}

  private self(holder: string): LeaseSelf {
    return { holder, host: this.options.host, pid: this.options.pid };
  }

  /**
   * Waits until this process holds the lease. `startedAgoMs`: how long ago what this BOOT stands for
   * began (the process, for its first BOOT): its start is placed on the database's clock with it.
   */
  async acquire(startedAgoMs = 0): Promise<HeldLease> {
    // Another holder under this host and pid reads as a dead predecessor: this process's own BOOTs queue here instead.
    const before = this.local;
    let done!: () => void;
    this.local = new Promise<void>((resolve) => (done = resolve));
    await before;
    try {
      const held = await this.acquireFor(startedAgoMs);
      return { ...held, release: (decided) => held.release(decided).finally(done) };
    } catch (error) {
      done();
      throw error;
    }
  }

  private async acquireFor(startedAgoMs: number): Promise<HeldLease> {
    // Asked every time: a restore may have replaced the store (a backup holds no lease table).
    await this.repository.ensureTable();
    const holder = `${this.options.pid}-${randomBytes(8).toString('hex')}`;
    const self = this.self(holder);
    // This process's start on the database's clock: only a duration is taken from this host.
    const startedAt = (await this.repository.now()) - startedAgoMs;
    let told = false;
    for (;;) {
      const row = await this.repository.read(this.deployment);
      const verdict = holderVerdict(row, self, this.options.engine, pidAlive);
      if (verdict !== 'live' && (await this.repository.acquire(this.deployment, self, this.options.ttlMs, verdict === 'dead' ? row!.holder : null))) {
        const now = await this.repository.read(this.deployment);
        return this.held(holder, decidedForUs(now, startedAt, this.options));
      }
      if (!told && verdict === 'live') {
        told = true;
        this.options.onWait?.({ host: row!.host, pid: row!.pid });
      }
      await new Promise((resolve) => setTimeout(resolve, this.options.pollMs ?? 200));
    }
  }

  /** Whether `holder` still holds the lease: its effects are running (false: they died with it). */
  async holds(holder: string): Promise<boolean> {
    const row = await this.repository.read(this.deployment);
    if (row?.holder !== holder) return false;
    return holderVerdict(row, this.self(''), this.options.engine, pidAlive) === 'live';
  }

  private held(holder: string, decidedSinceStart: boolean): HeldLease {
    const renew = setInterval(
      () =>
        void this.repository.renew(this.deployment, holder, this.options.ttlMs).then(
          (kept) => {
            if (!kept) {
              clearInterval(renew);
              this.options.onLost?.();
            }
          },
          () => undefined, // the database is away: the next renewal tries again
        ),
      Math.max(50, Math.floor(this.options.ttlMs / 3)),
    );
    renew.unref();
    return {
      holder,
      decidedSinceStart,
      release: async (decided) => {
        clearInterval(renew);
        await this.repository.release(this.deployment, holder, decided ? `${this.options.host}:${this.options.pid}` : null);
      },
    };
  }
}
