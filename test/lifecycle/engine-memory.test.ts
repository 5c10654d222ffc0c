import { join } from 'node:path';
import { LifecycleConflictError } from '../../db/repositories/lifecycle-repository';
import { loadConfig } from '../../server/config';
import { KeywardRuntime } from '../../server/runtime';
import { engines, freshDatabase, TestDatabase } from '../support/databases';
import { testDir } from '../support/run-dir';

/**
 * An event starts from the snapshot this process last committed instead of reading it back; another
 * process's commit is still caught (compare-and-swap at commit, a fresh read before any refusal).
 */
jest.setTimeout(120_000);

function runtimeOn(database: TestDatabase, name: string): KeywardRuntime {
  const home = testDir(`engine-memory-${name}`);
  const env = database.config.client === 'pg' ? { DATABASE_URL: database.config.connectionString } : { KEYWARD_SQLITE: database.config.filename };
  return new KeywardRuntime(loadConfig({ KEYWARD_HOME: home, SOFTHSM2_CONF: join(home, 'softhsm2.conf'), KEYWARD_TLS_SANS: 'localhost,127.0.0.1', ...env }));
}

describe.each(engines())("the engine's remembered snapshot on %s", (engine) => {
  let database: TestDatabase;
  let a: KeywardRuntime;
  let b: KeywardRuntime;

  beforeAll(async () => {
    database = await freshDatabase(engine, 'enginememory');
    a = runtimeOn(database, 'a');
    b = runtimeOn(database, 'b');
    expect((await a.boot('test')).outcome).toBe('applied');
    expect((await a.send('SELECT_STORAGE', { storageType: 'software' }, {}, 'test')).outcome).toBe('applied');
  });

  afterAll(async () => {
    await a.close();
    await b.close();
    await database.drop();
  });

  it('does not read the lifecycle row back before an event it follows on', async () => {
    const reads: string[] = [];
    const listener = (query: { sql: string }) => {
      if (/from [`"]lifecycle[`"]/.test(query.sql) && /^select/i.test(query.sql)) reads.push(query.sql);
    };
    a.store.reader.on('query', listener);
    a.store.db.on('query', listener);
    try {
      expect((await a.send('CHOOSE_FRESH', {}, {}, 'test')).outcome).toBe('applied');
    } finally {
      a.store.reader.off('query', listener);
      a.store.db.off('query', listener);
    }
    expect(reads).toEqual([]);
  });

  it("catches another process's commit: no event is lost or applied to a stale state", async () => {
    // a remembers the credential step; b moves on to the credential review.
    const generated = await b.send('GENERATE_TLS', { subjectAltNames: ['localhost'] }, {}, 'test');
    expect(generated.outcome).toBe('applied');
    // Refused on a's remembered snapshot, accepted on the persisted one.
    const cancel = await a.send('CANCEL_TLS', {}, {}, 'test');
    expect(cancel).toMatchObject({ outcome: 'applied', revision: generated.revision! + 1 });
    // Accepted on a's remembered snapshot too, but b moved: the commit conflicts and a retries.
    expect((await b.send('GENERATE_TLS', { subjectAltNames: ['localhost'] }, {}, 'test')).outcome).toBe('applied');
    const again = await a.send('CANCEL_TLS', {}, {}, 'test');
    expect(again.outcome).toBe('applied');
    const { history, revision } = await a.engine.inspect({ historyLimit: 100 });
    expect(history.map((h) => h.revision)).toEqual(Array.from({ length: revision! }, (_, k) => k + 1));
    for (let k = 1; k < history.length; k++) expect(history[k]!.fromState).toBe(history[k - 1]!.toState);
    expect(
      history
        .filter((h) => h.source === 'test')
        .slice(-4)
        .map((h) => h.eventType),
    ).toEqual(['GENERATE_TLS', 'CANCEL_TLS', 'GENERATE_TLS', 'CANCEL_TLS']);
    expect((await a.engine.inspect()).revision).toBe(again.revision);
    expect((await a.engine.load()).revision).toBe(again.revision);
  });

  it('takes the chain head into the compare-and-swap: a store restored meanwhile may be at the same revision', async () => {
    const current = (await a.store.lifecycle.load('default'))!;
    const entry = { eventType: 'X', source: 'test', fromState: current.state, toState: current.state, payload: {}, at: new Date().toISOString() };
    const next = { machineVersion: current.machineVersion, snapshot: current.snapshot, state: current.state };
    await expect(a.store.lifecycle.commit('default', current.revision, next, [entry], undefined, 'f'.repeat(64))).rejects.toBeInstanceOf(LifecycleConflictError);
    expect((await a.store.lifecycle.load('default'))!).toEqual(current);
  });
});
