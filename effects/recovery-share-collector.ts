import type { RecoveryShare, RecoveryShareSetRecord } from '../crypto/recovery-shares';

/** How many shares are in, for the page and the CLI: counts and times, never a share. */
export interface CollectedShares {
  shareSetId: string;
  threshold: number;
  /** The indexes entered so far (1..N). */
  indexes: number[];
  /** When the shares entered so far are forgotten. */
  expiresAt: string;
}

/**
 * The recovery shares typed in during auto-restore, until K are in: in this process's memory only,
 * never persisted, forgotten `ttlMs` after the first one came in, on a restart, and once used. With
 * several nodes, every share must be entered through the same node (docs/lifecycle.md).
 */
export class RecoveryShareCollector {
  private shares = new Map<number, RecoveryShare>();
  private set: { shareSetId: string; threshold: number } | null = null;
  private expires = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly ttlMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Adds a share checked against `set`; a second copy of one index replaces the first. */
  add(share: RecoveryShare, set: RecoveryShareSetRecord): CollectedShares {
    this.expireIfDue();
    if (this.set?.shareSetId !== set.shareSetId) this.forget();
    if (this.shares.size === 0) {
      this.set = { shareSetId: set.shareSetId, threshold: set.threshold };
      this.expires = this.clock() + this.ttlMs;
      // Forgotten on time even if nobody asks again.
      this.timer = setTimeout(() => this.forget(), this.ttlMs);
      this.timer.unref();
    }
    this.shares.get(share.index)?.shamir.fill(0);
    this.shares.set(share.index, share);
    return this.status()!;
  }

  /** The shares held, for combining; empty when they were forgotten. */
  take(): RecoveryShare[] {
    this.expireIfDue();
    return [...this.shares.values()];
  }

  status(): CollectedShares | null {
    this.expireIfDue();
    if (!this.set || this.shares.size === 0) return null;
    return { ...this.set, indexes: [...this.shares.keys()].sort((a, b) => a - b), expiresAt: new Date(this.expires).toISOString() };
  }

  /** Overwrites and drops every share held. */
  forget(): void {
    for (const share of this.shares.values()) share.shamir.fill(0);
    this.shares.clear();
    this.set = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private expireIfDue(): void {
    if (this.shares.size > 0 && this.clock() >= this.expires) this.forget();
  }
}
