import { ChildProcess } from 'node:child_process';
import { LifecycleConflictError, LifecycleRepository } from '../../db/repositories/lifecycle-repository';
import { openDatabase } from '../../db/database';
import { CliHome } from '../support/cli';
import { engines, freshDatabase, TestDatabase } from '../support/databases';

/**
 * Two processes sending events at once, on SQLite and on PostgreSQL: every accepted event is in the
 * log exactly once, revisions strictly increase with no gap, and each transition starts where the
 * previous one ended — none is lost.
 */
jest.setTimeout(180_000);

function finish(child: ChildProcess): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => resolve({ code, stdout: stdout || `{"outcome":"no output","stderr":${JSON.stringify(stderr)}}` }));
  });
}

describe.each(engines())('two writers at once on %s', (engine) => {
  let database: TestDatabase;
  let cli: CliHome;

  beforeAll(async () => {
    database = await freshDatabase(engine, 'concurrent');
    cli = new CliHome(`concurrent-${engine}`, database.config.client === 'pg' ? { DATABASE_URL: database.config.connectionString } : { KEYWARD_SQLITE: database.config.filename });
    expect(cli.run(['boot']).status).toBe(0);
    expect(cli.send('SELECT_STORAGE', { storageType: 'software' }).status).toBe(0);
    expect(cli.send('CHOOSE_FRESH').status).toBe(0);
  });

  afterAll(async () => {
    await database.drop();
  });

  async function race(args: string[]): Promise<Array<{ code: number | null; result: { outcome: string; followed?: boolean } }>> {
    const children = [cli.spawn([...args, '--json']), cli.spawn([...args, '--json'])];
    for (const child of children) child.stdin!.end();
    const outputs = await Promise.all(children.map(finish));
    return outputs.map(({ code, stdout }) => ({ code, result: JSON.parse(stdout.trim().split('\n').pop()!) as { outcome: string } }));
  }

  it('applies exactly one of two competing events, and one of two BOOTs at once (the other follows it), losing nothing', async () => {
    let applied = 0;
    for (let round = 0; round < 4; round++) {
      // Both try to leave the credential step; only one can.
      const generate = await race(['send', 'GENERATE_TLS', '--payload', '{"subjectAltNames":["localhost"]}']);
      expect(generate.filter((r) => r.result.outcome === 'applied')).toHaveLength(1);
      expect(generate.filter((r) => r.result.outcome !== 'applied').map((r) => r.code)).toEqual([expect.any(Number)]);
      const cancel = await race(['send', 'CANCEL_TLS']);
      expect(cancel.filter((r) => r.result.outcome === 'applied')).toHaveLength(1);
      applied += 2;
    }
    // One BOOT decides at a time (the BOOT lease): the one that started before the other decided follows it.
    const boots = await race(['boot']);
    expect(boots.map((b) => b.result.outcome)).toEqual(['applied', 'applied']);
    expect(boots.map((b) => b.result.followed === true).sort()).toEqual([false, true]);
    applied += 1;

    const { history, revision } = cli.inspect();
    expect(history.map((h) => h.revision)).toEqual(Array.from({ length: revision }, (_, k) => k + 1));
    for (let k = 1; k < history.length; k++) expect(history[k]!.fromState).toBe(history[k - 1]!.toState);
    const fromCli = history.filter((h) => h.source === 'cli');
    expect(fromCli).toHaveLength(applied + 3); // the three of the set-up
    expect(fromCli.filter((h) => h.eventType === 'GENERATE_TLS')).toHaveLength(4);
    expect(fromCli.filter((h) => h.eventType === 'BOOT')).toHaveLength(2);
  });

  it('gives a stale writer a conflict and writes nothing for it', async () => {
    const db = openDatabase(database.config);
    try {
      const repository = new LifecycleRepository(db);
      const current = (await repository.load('default'))!;
      const entry = { eventType: 'X', source: 'test', fromState: 'a', toState: 'b', payload: {}, at: new Date().toISOString() };
      await expect(repository.commit('default', current.revision - 1, { machineVersion: 1, snapshot: current.snapshot, state: current.state }, [entry])).rejects.toBeInstanceOf(LifecycleConflictError);
      await expect(repository.commit('default', null, { machineVersion: 1, snapshot: current.snapshot, state: current.state }, [entry])).rejects.toBeInstanceOf(LifecycleConflictError);
      expect((await repository.load('default'))!.revision).toBe(current.revision);
      expect(await db('transition_log').where({ event_type: 'X' }).count({ n: '*' })).toEqual([{ n: engine === 'postgres' ? '0' : 0 }]);
    } finally {
      await db.destroy();
    }
  });
});
