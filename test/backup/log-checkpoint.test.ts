import { checkpointMac, UNKEYED_CHAIN } from '../../db/audit-chain';
import { auditTransitionLog, auditTransitionLogForBoot, CHECKPOINT_EVERY } from '../../effects/transition-log-audit';
import type { KeywardRuntime } from '../../server/runtime';
import { largeCopy } from '../support/large-log';
import { Install } from '../support/install';
import type { TransitionLogRow } from '../../db/rows';

/**
 * BOOT checks the transition log from a checkpoint that the DEK-derived chain key vouches for, so its
 * work does not grow with the log (its time: `npm run bench -- boot`); rows after the checkpoint, the checkpointed row itself and the
 * checkpoint are still checked, and a checkpoint that does not authenticate makes BOOT check it all.
 */
jest.setTimeout(600_000);

const DEPLOYMENT = 'default';

describe("BOOT's check of the transition log from a keyed checkpoint", () => {
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
    const original = await db<TransitionLogRow>('transition_log').where({ deployment: DEPLOYMENT, revision }).first();
    await db('transition_log').where({ deployment: DEPLOYMENT, revision }).update(columns);
    try {
      return await check();
    } finally {
      const { id: _id, ...restore } = original!;
      await db('transition_log')
        .where({ deployment: DEPLOYMENT, revision: columns.revision ?? revision })
        .update(restore);
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

  it('reads as many log rows in a BOOT at 10,000 rows as at about 100', async () => {
    // A second store with the same token, KEK and DEK: a copy of this one, whose log then grows to 10,000 rows.
    const large = await largeCopy(install, 10_000);
    try {
      // The first BOOT of the large log checks its new rows from the checkpoint and moves it.
      expect((await large.runtime().boot('test')).outcome).toBe('applied');
      const rowsRead = async (runtime: KeywardRuntime, boot: () => Promise<unknown>) => {
        let rows = 0;
        const count = (response: unknown, query: { sql: string }) => {
          if (/^select/i.test(query.sql) && /[`"]transition_log[`"]/.test(query.sql) && Array.isArray(response)) rows += response.length;
        };
        for (const db of new Set([runtime.store.db, runtime.store.reader])) db.on('query-response', count);
        try {
          await boot();
        } finally {
          for (const db of new Set([runtime.store.db, runtime.store.reader])) db.off('query-response', count);
        }
        return rows;
      };
      await install.restart();
      const small = await rowsRead(install.runtime, () => install.boot());
      await large.restart();
      const big = await rowsRead(large.runtime(), () => large.runtime().boot('test'));
      expect((await large.runtime().store.lifecycle.load(DEPLOYMENT))!.revision).toBeGreaterThan(10_000);
      expect(small).toBeLessThanOrEqual(CHECKPOINT_EVERY + 1);
      expect(big).toBeLessThanOrEqual(CHECKPOINT_EVERY + 1);
      // While the whole chain is read by the audit: the full check stays with `keyward audit verify`.
      expect(await auditTransitionLog(large.runtime().store, large.runtime().keyring, DEPLOYMENT)).toMatchObject({
        ok: true,
        rows: (await large.runtime().store.lifecycle.load(DEPLOYMENT))!.revision,
      });
    } finally {
      await large.close();
    }
  });
});
