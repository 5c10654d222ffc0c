import { checkpointMac, UNKEYED_CHAIN } from '../../db/audit-chain';
import type { TransitionEntry } from '../../db/repositories/lifecycle-repository';
import { auditTransitionLog, auditTransitionLogForBoot } from '../../effects/transition-log-audit';
import { MACHINE_VERSION } from '../../machines/lifecycle-machine';
import { join } from 'node:path';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { KeywardRuntime } from '../../server/runtime';
import { Install } from '../support/install';
import { testDir } from '../support/run-dir';
import { SOFTHSM_MODULE } from '../support/softhsm';

/**
 * BOOT checks the transition log from a checkpoint that the DEK-derived chain key vouches for, so its
 * time does not grow with the log; rows after the checkpoint, the checkpointed row itself and the
 * checkpoint are still checked, and a checkpoint that does not authenticate makes BOOT check it all.
 */
jest.setTimeout(600_000);

const DEPLOYMENT = 'default';

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  const result = await work();
  if (result && typeof result === 'object' && 'outcome' in result) expect(result.outcome).toBe('applied');
  return Number(process.hrtime.bigint() - started) / 1e6;
}

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

  it('leaves a checkpoint keyed with the DEK, and the next BOOT reads only the rows after it', async () => {
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
    // A few rows behind: verifying them is cheaper than writing the checkpoint again.
    expect(await store().lifecycle.checkpoint(DEPLOYMENT)).toEqual(checkpoint);
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
    // A checkpoint is never written over a broken chain (without one, a whole chain gets one).
    await store().db('transition_log_checkpoint').where({ deployment: DEPLOYMENT }).delete();
    const broken = await withRowChanged(head, { to_state: 'operational-but-not-really' }, () => auditTransitionLogForBoot(store(), keyring(), DEPLOYMENT));
    expect(broken.ok).toBe(false);
    expect(await store().lifecycle.checkpoint(DEPLOYMENT)).toBeNull();
    expect(await auditTransitionLogForBoot(store(), keyring(), DEPLOYMENT)).toMatchObject({ ok: true });
    expect(await store().lifecycle.checkpoint(DEPLOYMENT)).toMatchObject({ revision: head, chainKey: checkpoint.chainKey });
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
    // A second store with the same token, KEK and DEK: a copy of this one, whose log then grows to
    // 10,000 rows; BOOTs of the two alternate, each in a new runtime (an empty keyring, as a restart).
    const largeConfig = { ...install.config, database: { client: 'sqlite' as const, filename: join(testDir('logcheckpoint-large'), 'keyward.sqlite') } };
    expect(install.config.database.client).toBe('sqlite');
    await store().db.raw('VACUUM INTO ?', [largeConfig.database.filename]);
    let large = new KeywardRuntime(largeConfig, { busyWaitMs: 1000 });
    try {
      // Rows as the engine writes them (an outage's BOOT every 30 s), keyed with the DEK.
      await large.custody.ensureDek();
      const chainKey = await large.chainKey();
      const repository = large.store.lifecycle;
      for (let current = (await repository.load(DEPLOYMENT))!; current.revision < 10_000; current = (await repository.load(DEPLOYMENT))!) {
        const at = new Date().toISOString();
        const entries: TransitionEntry[] = Array.from({ length: Math.min(500, 10_000 - current.revision) }, () => ({ eventType: 'BOOT', source: 'startup', fromState: current.state, toState: current.state, payload: { type: 'BOOT', at }, at }));
        await repository.commit(DEPLOYMENT, current.revision, { machineVersion: MACHINE_VERSION, snapshot: current.snapshot, state: current.state }, entries, chainKey, current.chainHead);
      }
      const bootSmall = async () => {
        await install.restart();
        return timed(() => install.boot());
      };
      const bootLarge = async () => {
        await large.close();
        Pkcs11Module.open(SOFTHSM_MODULE).refresh();
        large = new KeywardRuntime(largeConfig, { busyWaitMs: 1000 });
        return timed(() => large.boot('test'));
      };
      const fullCheck = async (runtime: KeywardRuntime) => timed(async () => expect((await auditTransitionLog(runtime.store, runtime.keyring, DEPLOYMENT)).ok).toBe(true));

      // The first BOOT of the large log checks its new rows from the checkpoint and moves it.
      for (let i = 0; i < 2; i++) {
        await bootSmall();
        await bootLarge();
      }
      const small: number[] = [];
      const big: number[] = [];
      for (let i = 0; i < 15; i++) {
        if (i % 2 === 0) {
          small.push(await bootSmall());
          big.push(await bootLarge());
        } else {
          big.push(await bootLarge());
          small.push(await bootSmall());
        }
      }
      const smallRows = (await store().lifecycle.load(DEPLOYMENT))!.revision;
      const largeRows = (await large.store.lifecycle.load(DEPLOYMENT))!.revision;
      expect(smallRows).toBeLessThan(200);
      expect(largeRows).toBeGreaterThanOrEqual(10_000);
      const smallFull = await fullCheck(install.runtime);
      const largeFull = await fullCheck(large);

      // The fastest of each series: on a shared machine, load only ever adds time; the median is shown too.
      const ratio = Math.min(...big) / Math.min(...small);
      process.stdout.write(
        `BOOT at ${smallRows} rows: fastest ${Math.min(...small).toFixed(1)} ms (median ${median(small).toFixed(1)}), at ${largeRows} rows: fastest ${Math.min(...big).toFixed(1)} ms ` +
          `(median ${median(big).toFixed(1)}): ratio ${ratio.toFixed(3)}; whole-chain check: ${smallFull.toFixed(1)} ms and ${largeFull.toFixed(1)} ms (ratio ${(largeFull / smallFull).toFixed(2)})\n`,
      );
      expect(ratio).toBeLessThanOrEqual(1.2);
    } finally {
      await large.close();
    }
  });
});
