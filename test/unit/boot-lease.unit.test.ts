import type { BootLeaseRow } from '../../db/repositories/boot-lease-repository';
import { holderVerdict, LeaseSelf } from '../../server/boot-lease';

/** Who holds the BOOT lease (docs/lifecycle.md "The engine"): the rule, without a database. */
describe('the BOOT lease holder verdict', () => {
  const self: LeaseSelf = { holder: 'mine', host: 'node-a', pid: 100 };
  const row = (over: Partial<BootLeaseRow>): BootLeaseRow => ({ holder: 'other', host: 'node-b', pid: 200, expiresAt: 10_000, decidedAt: 0, now: 5_000, ...over });
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
});
