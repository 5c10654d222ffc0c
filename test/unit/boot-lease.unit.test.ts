import type { BootLeaseRow } from '../../db/repositories/boot-lease-repository';
import { decidedForUs, holderVerdict, LeaseSelf } from '../../server/boot-lease';

/** Who holds the BOOT lease (docs/lifecycle.md "The engine"): the rule, without a database. */
describe('the BOOT lease holder verdict', () => {
  const self: LeaseSelf = { holder: 'mine', host: 'node-a', pid: 100 };
  const row = (over: Partial<BootLeaseRow>): BootLeaseRow => ({ holder: 'other', host: 'node-b', pid: 200, expiresAt: 10_000, decidedAt: 0, decidedBy: null, now: 5_000, ...over });
  const alive = (pids: number[]) => (pid: number) => pids.includes(pid);

  it("a missing or released row is free; this holder's own is mine", () => {
    expect(holderVerdict(null, self, 'pg', alive([]))).toBe('free');
    expect(holderVerdict(row({ holder: null }), self, 'pg', alive([]))).toBe('free');
    expect(holderVerdict(row({ holder: 'mine' }), self, 'pg', alive([]))).toBe('mine');
  });

  it('PostgreSQL: expiry alone tells, whatever the pid on this host says', () => {
    expect(holderVerdict(row({}), self, 'pg', alive([]))).toBe('live');
    expect(holderVerdict(row({ expiresAt: 4_999 }), self, 'pg', alive([200]))).toBe('dead');
    // The same host name in another container: its pid means nothing here.
    expect(holderVerdict(row({ host: 'node-a' }), self, 'pg', alive([]))).toBe('live');
    expect(holderVerdict(row({ host: 'node-a', expiresAt: 1 }), self, 'pg', alive([200]))).toBe('dead');
  });

  it('SQLite: a holder on this host lives as long as its process, however late its renewal', () => {
    expect(holderVerdict(row({ host: 'node-a', expiresAt: 1 }), self, 'sqlite', alive([200]))).toBe('live');
    expect(holderVerdict(row({ host: 'node-a' }), self, 'sqlite', alive([]))).toBe('dead');
    expect(holderVerdict(row({ host: 'node-b', expiresAt: 1 }), self, 'sqlite', alive([200]))).toBe('dead');
  });

  it("another lease under this very host and pid is a dead predecessor's (containers reuse pid 1)", () => {
    expect(holderVerdict(row({ host: 'node-a', pid: 100 }), self, 'pg', alive([100]))).toBe('dead');
    expect(holderVerdict(row({ host: 'node-a', pid: 100 }), self, 'sqlite', alive([100]))).toBe('dead');
  });

  it('a BOOT decided for this process when another process ended it after this one started', () => {
    const released = (decidedAt: number, decidedBy: string | null) => row({ holder: null, decidedAt, decidedBy });
    expect(decidedForUs(released(4_000, 'node-b:200'), 3_000, self)).toBe(true);
    expect(decidedForUs(released(3_000, 'node-b:200'), 3_000, self)).toBe(true);
    // Decided before this process started: that BOOT did not see what this one sees.
    expect(decidedForUs(released(2_999, 'node-b:200'), 3_000, self)).toBe(false);
    // Its own earlier BOOT (an outage retry asks to look again), or none yet.
    expect(decidedForUs(released(4_000, 'node-a:100'), 3_000, self)).toBe(false);
    expect(decidedForUs(released(0, null), 0, self)).toBe(false);
    expect(decidedForUs(null, 0, self)).toBe(false);
  });
});
