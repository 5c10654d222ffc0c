import { checkpointMac, UNKEYED_CHAIN } from '../../db/audit-chain';
import type { TransitionEntry } from '../../db/repositories/lifecycle-repository';
import { auditTransitionLog, auditTransitionLogForBoot } from '../../effects/transition-log-audit';
import { MACHINE_VERSION } from '../../machines/lifecycle-machine';
import { Install } from '../support/install';

/**
 * BOOT checks the transition log from a checkpoint that the DEK-derived chain key vouches for, so its
 * time does not grow with the log; rows after the checkpoint, the checkpointed row itself and the
 * checkpoint are still checked, and a checkpoint that does not authenticate makes BOOT check it all.
 */
jest.setTimeout(600_000);

const DEPLOYMENT = 'default';

describe('BOOT\'s check of the transition log from a keyed checkpoint', () => {
  let install: Install;
  const store = () => install.runtime.store;
  const keyring = () => install.runtime.keyring;

  beforeAll(async () => {
    install = await Install.create('logcheckpoint');
    await install.boot();
    await install.walkWizard('softhsm');
    await install.restart();
    await install.boot();
  });
  afterAll(() => install.close());

  /** Changes a log row for the length of `check`, then puts it back. */
  async function withRowChanged<T>(revision: number, columns: Record<string, unknown>, check: () => Promise<T>): Promise<T> {
    const db = store().db;
    const original = await db('transition_log').where({ deployment: DEPLOYMENT, revision }).first();
    await db('transition_log').where({ deployment: DEPLOYMENT, revision }).update(columns);
    try {
      return await check();
    } finally {
      const { id: _id, ...restore } = original;
      await db('transition_log').where({ deployment: DEPLOYMENT, revision: columns.revision ?? revision }).update(restore);
    }
  }

  it('leaves a checkpoint at the head, keyed with the DEK, and the next BOOT reads only the rows after it', async () => {
    const checkpoint = (await store().lifecycle.checkpoint(DEPLOYMENT))!;
    expect(checkpoint.chainKey).toBe(`dek:${keyring().current}`);
    const head = (await store().lifecycle.load(DEPLOYMENT))!;
    // BOOT checked, then committed its own rows after the checkpoint.
    expect(checkpoint.revision).toBeLessThan(head.revision);

    await install.restart();
    const statements: string[] = [];
    const listener = (query: { sql: string; bindings?: unknown[] }) => {
      if (/from [`"]transition_log[`"]/.test(query.sql)) statements.push(query.sql);
    };
    store().reader.on('query', listener);
    try {
      expect((await install.boot()).outcome).toBe('applied');
    } finally {
      store().reader.off('query', listener);
    }
    expect(statements.length).toBeGreaterThan(0);
    // Every read of the log is bounded by a revision: never the whole chain.
    for (const sql of statements) expect(sql).toMatch(/[`"]revision[`"] (>|=) \?/);
    expect((await store().lifecycle.checkpoint(DEPLOYMENT))!.revision).toBe(head.revision);
  });

  it('reports a row edited or deleted after the checkpoint, and the checkpointed row edited', async () => {
    // Rows after the checkpoint: this BOOT's own, and two more events.
    await install.runtime.boot('test');
    await install.runtime.boot('test');
    const checkpoint = (await store().lifecycle.checkpoint(DEPLOYMENT))!;
    const head = (await store().lifecycle.load(DEPLOYMENT))!.revision;
    expect(head).toBeGreaterThan(checkpoint.revision + 1);
    for (const revision of [checkpoint.revision, checkpoint.revision + 1, head]) {
      const edited = await withRowChanged(revision, { to_state: 'operational-but-not-really' }, () => auditTransitionLogForBoot(store(), keyring(), DEPLOYMENT));
      expect({ revision, broken: edited.firstBroken }).toEqual({ revision, broken: expect.objectContaining({ revision, problem: 'hash' }) });
    }
    const deleted = await withRowChanged(checkpoint.revision + 1, { revision: -5 }, () => auditTransitionLogForBoot(store(), keyring(), DEPLOYMENT));
    expect(deleted.firstBroken).toMatchObject({ revision: checkpoint.revision + 1, problem: 'missing' });
    const checkpointed = await withRowChanged(checkpoint.revision, { revision: -6 }, () => auditTransitionLogForBoot(store(), keyring(), DEPLOYMENT));
    expect(checkpointed.firstBroken).toMatchObject({ revision: checkpoint.revision, problem: 'missing' });
    // A checkpoint is never moved over a broken chain.
    expect(await store().lifecycle.checkpoint(DEPLOYMENT)).toEqual(checkpoint);
    expect(await auditTransitionLogForBoot(store(), keyring(), DEPLOYMENT)).toMatchObject({ ok: true });
  });

  it('checks the whole chain when the checkpoint is forged: a row broken before it is still found', async () => {
    await install.runtime.boot('test');
    const genuine = (await store().lifecycle.checkpoint(DEPLOYMENT))!;
    const head = (await store().lifecycle.load(DEPLOYMENT))!;
    expect(head.revision).toBeGreaterThan(genuine.revision);
    const unsigned = { deployment: DEPLOYMENT, revision: head.revision, hash: head.chainHead!, chainKey: genuine.chainKey };
    const forgeries = [
      { ...unsigned, mac: 'ab'.repeat(32) },
      { ...unsigned, mac: genuine.mac }, // moved to another revision under the genuine MAC
      // Vouched for by the unkeyed chain's key, which is public.
      { ...unsigned, chainKey: 'none', mac: checkpointMac(UNKEYED_CHAIN.key, { ...unsigned, chainKey: 'none' }) },
      // Vouched for by a DEK this process does not hold.
      { ...unsigned, chainKey: 'dek:00000000000000ff', mac: checkpointMac(Buffer.alloc(32, 1), { ...unsigned, chainKey: 'dek:00000000000000ff' }) },
    ];
    try {
      for (const forged of forgeries) {
        await store().lifecycle.saveCheckpoint(forged);
        const verdict = await withRowChanged(3, { to_state: 'forged-history' }, () => auditTransitionLogForBoot(store(), keyring(), DEPLOYMENT));
        expect({ chainKey: forged.chainKey, broken: verdict.firstBroken }).toEqual({ chainKey: forged.chainKey, broken: expect.objectContaining({ revision: 3, problem: 'hash' }) });
      }
    } finally {
      await store().lifecycle.saveCheckpoint(genuine);
    }
    // A genuine checkpoint vouches for the rows before it: BOOT does not re-read them, the full audit does.
    const skipped = await withRowChanged(3, { to_state: 'forged-history' }, async () => ({
      boot: await auditTransitionLogForBoot(store(), keyring(), DEPLOYMENT),
      audit: await auditTransitionLog(store(), keyring(), DEPLOYMENT),
    }));
    expect(skipped.boot.ok).toBe(true);
    expect(skipped.audit.firstBroken).toMatchObject({ revision: 3, problem: 'hash' });
  });

  it('takes as long to BOOT at 10,000 log rows as at about 100 (at most 1.2 times, one run)', async () => {
    const RUNS = 15;
    const timeBoots = async (): Promise<number[]> => {
      const times: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        await install.restart();
        const started = process.hrtime.bigint();
        expect((await install.boot()).outcome).toBe('applied');
        times.push(Number(process.hrtime.bigint() - started) / 1e6);
      }
      return times;
    };
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const fullCheck = async () => {
      const started = process.hrtime.bigint();
      expect((await auditTransitionLog(store(), keyring(), DEPLOYMENT)).ok).toBe(true);
      return Number(process.hrtime.bigint() - started) / 1e6;
    };

    await timeBoots(); // warm-up
    const small = await timeBoots();
    const smallRows = (await store().lifecycle.load(DEPLOYMENT))!.revision;
    const smallFull = await fullCheck();
    expect(smallRows).toBeLessThan(200);

    // Rows as the engine writes them (an outage's BOOT every 30 s), keyed with the DEK.
    await install.runtime.custody.ensureDek();
    const chainKey = await install.runtime.chainKey();
    const repository = store().lifecycle;
    while ((await repository.load(DEPLOYMENT))!.revision < 10_000) {
      const current = (await repository.load(DEPLOYMENT))!;
      const count = Math.min(500, 10_000 - current.revision);
      const at = new Date().toISOString();
      const entries: TransitionEntry[] = Array.from({ length: count }, () => ({ eventType: 'BOOT', source: 'startup', fromState: current.state, toState: current.state, payload: { type: 'BOOT', at }, at }));
      await repository.commit(DEPLOYMENT, current.revision, { machineVersion: MACHINE_VERSION, snapshot: current.snapshot, state: current.state }, entries, chainKey, current.chainHead);
    }
    await timeBoots(); // the first BOOT after the rows checks them all, and moves the checkpoint
    const large = await timeBoots();
    const largeRows = (await store().lifecycle.load(DEPLOYMENT))!.revision;
    const largeFull = await fullCheck();

    // The fastest of each series: on a shared machine, load only ever adds time; the median is shown too.
    const ratio = Math.min(...large) / Math.min(...small);
    process.stdout.write(
      `BOOT at ${smallRows} rows: fastest ${Math.min(...small).toFixed(1)} ms (median ${median(small).toFixed(1)}), at ${largeRows} rows: fastest ${Math.min(...large).toFixed(1)} ms ` +
        `(median ${median(large).toFixed(1)}): ratio ${ratio.toFixed(3)}; whole-chain check: ${smallFull.toFixed(1)} ms and ${largeFull.toFixed(1)} ms (ratio ${(largeFull / smallFull).toFixed(2)})\n`,
    );
    expect(ratio).toBeLessThanOrEqual(1.2);
  });
});
