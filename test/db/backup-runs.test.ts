import { migrateToLatest } from '../../db/database';
import { BackupRunRepository, RunNode } from '../../db/repositories/backup-run-repository';
import { Store } from '../../db/store';
import { DekKeyring } from '../../crypto/dek-keyring';
import { summarize } from '../../server/backup-status';
import { engines, freshDatabase, TestDatabase } from '../support/databases';

jest.setTimeout(60_000);

/**
 * The backup run history (migration 014) on each engine, between stores standing for processes on
 * different hosts: a scheduled time claimed by several at once goes to exactly one, manual runs never
 * clash, an earlier process's unfinished runs are marked interrupted, and the summary the status page
 * and /metrics read says what failed and what is stale.
 */
describe.each(engines())('backup runs on %s', (engine) => {
  let database: TestDatabase;
  let stores: Store[];
  const node = (n: number, pid = 1000 + n): RunNode => ({ host: `host-${n}`, pid, home: '/srv/keyward' });

  beforeAll(async () => {
    database = await freshDatabase(engine, 'backup-runs');
    stores = Array.from({ length: 4 }, () => Store.open(database.config, new DekKeyring()));
    await migrateToLatest(stores[0]!.db);
  });

  afterAll(async () => {
    for (const store of stores) await store.close();
    await database.drop();
  });

  const repo = (n: number) => new BackupRunRepository(stores[n]!.db, 'default');

  it('gives a scheduled time claimed by four processes at once to exactly one', async () => {
    const at = new Date().toISOString();
    for (const slot of ['2026-12-07T03:00:00.000Z', '2026-12-08T03:00:00.000Z']) {
      const claims = await Promise.all([0, 1, 2, 3].map((n) => repo(n).claim('backup', slot, node(n), at)));
      expect(claims.filter((id) => id !== null)).toHaveLength(1);
      // The drill of the same time is a claim of its own.
      expect(await repo(0).claim('drill', slot, node(0), at)).not.toBeNull();
      expect(await repo(1).claim('drill', slot, node(1), at)).toBeNull();
    }
    expect(Number(((await stores[0]!.db('backup_runs').count({ n: '*' }).first()) as { n: number | string }).n)).toBe(4);
  });

  it('records manual runs beside them, finishes them, and summarizes the newest', async () => {
    const r = repo(2);
    const first = await r.begin('backup', 'web', node(2), '2026-12-09T10:00:00.000Z');
    const second = await r.begin('backup', 'web', node(2), '2026-12-09T11:00:00.000Z');
    expect(second).not.toBe(first);
    await r.finish(first, { status: 'ok', finishedAt: '2026-12-09T10:00:05.000Z', archive: 'a.kwbak', size: 1234, message: '6 entries' });
    await r.finish(second, { status: 'failed', finishedAt: '2026-12-09T11:00:02.000Z', message: 'the disk is full' });
    const latest = await r.latest('backup');
    expect(latest.succeeded).toMatchObject({ id: first, trigger: 'web', archive: 'a.kwbak', size: 1234, node: node(2) });
    expect(latest.finished).toMatchObject({ id: second, status: 'failed', message: 'the disk is full' });
    const now = new Date('2026-12-10T12:30:05.000Z');
    const summary = summarize('backup', latest, 26 * 3600, now);
    expect(summary).toMatchObject({ failed: true, stale: true, age: '26 hours' });
    expect(summary.problems).toEqual(['The last backup failed (2026-12-09T11:00:02.000Z): The disk is full.', 'The last successful backup is 26 hours old: older than the 26 hours allowed.']);
    expect(summarize('drill', await r.latest('drill'), null, now).problems).toEqual([]);
    expect(summarize('drill', { finished: null, succeeded: null, running: null }, 3600, now).problems).toEqual([
      'There has been no successful restore drill yet, and one is expected at least every 60 minutes.',
    ]);
  });

  it("marks the runs this home's earlier process left running as interrupted, and no other process's", async () => {
    // The same pid as before, as a restarted container's process often has.
    const earlier = node(3, 77);
    const id = await repo(3).begin('backup', 'web', earlier, '2026-12-07T10:00:00.000Z');
    const elsewhere = await repo(3).begin('backup', 'web', { ...earlier, host: 'other-host' }, '2026-12-07T10:00:00.000Z');
    const ownNew = await repo(3).begin('backup', 'web', earlier, '2026-12-07T11:00:01.000Z');
    expect(await repo(3).markInterrupted(earlier, '2026-12-07T11:00:00.000Z', '2026-12-07T11:00:02.000Z')).toBe(1);
    const rows = await repo(3).recent(20, 'backup');
    expect(rows.find((run) => run.id === id)).toMatchObject({ status: 'failed', message: expect.stringMatching(/^interrupted/) });
    expect(rows.find((run) => run.id === elsewhere)).toMatchObject({ status: 'running' });
    expect(rows.find((run) => run.id === ownNew)).toMatchObject({ status: 'running' });
  });
});
