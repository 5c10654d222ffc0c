import { MemorySessionStore, RecentSessionStore } from '../../server/web/session-store';

/** The session rows a page reads once a second instead of per request, and what ends them at once. */
describe('RecentSessionStore', () => {
  const session = (idHash: string) => ({ idHash, setupAuthorized: false, adminUserId: 1, createdAt: '2026-12-07T12:00:00.000Z', expiresAt: '2026-12-07T20:00:00.000Z' });
  let now: number;
  let rows: MemorySessionStore;
  let recent: RecentSessionStore;

  beforeEach(async () => {
    now = 1_000_000;
    rows = new MemorySessionStore();
    recent = new RecentSessionStore(rows, 1_000, () => now);
    await recent.create(session('a'), 'admin');
  });

  it('serves a row read less than a second ago without reading it again, and reads it again after', async () => {
    expect((await recent.find('a'))?.adminUsername).toBe('admin');
    // Ended behind its back (another replica's logout): still served within the second ...
    await rows.delete('a');
    now += 999;
    expect(await recent.find('a')).not.toBeNull();
    // ... and gone once the second has passed.
    now += 1;
    expect(await recent.find('a')).toBeNull();
  });

  it('ends a session at once when this process ends it, and forgets every row when told the lifecycle moved', async () => {
    await recent.create(session('b'), 'admin');
    await recent.find('a');
    await recent.find('b');
    await recent.delete('a');
    expect(await recent.find('a')).toBeNull();

    await rows.delete('b');
    expect(await recent.find('b')).not.toBeNull();
    recent.forgetRecent();
    expect(await recent.find('b')).toBeNull();
  });

  it('revoking set-up authorizations and deleting all sessions are seen at once', async () => {
    await recent.create({ ...session('setup'), adminUserId: null, setupAuthorized: true }, null);
    expect((await recent.find('setup'))?.setupAuthorized).toBe(true);
    await recent.revokeSetupAuthorizations();
    expect(await recent.find('setup')).toBeNull();
    await recent.find('a');
    await recent.deleteAll();
    expect(await recent.find('a')).toBeNull();
  });

  it('keeps a touch it made (the idle timeout counts from it)', async () => {
    await recent.find('a');
    await recent.touch('a', '2026-12-07T12:30:00.000Z');
    expect((await recent.find('a'))?.lastSeenAt).toBe('2026-12-07T12:30:00.000Z');
  });
});
