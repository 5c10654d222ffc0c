import { loadConfig } from './config';
import { DrillHarness, DrillReport, runDrill, ScratchStore } from '../effects/restore-drill';
import { KeywardRuntime } from './runtime';

/**
 * `keyward drill`: the archive restored onto a scratch keyward in this process (a scratch home, a
 * scratch SQLite file, a fresh SoftHSM token directory), then auto-restore, the canary, the log.
 */
export async function drill(archive: string, passphrase: string, backupPassword: string): Promise<DrillReport> {
  return runDrill(archive, backupPassword, async (scratch: ScratchStore): Promise<DrillHarness> => {
    const env: NodeJS.ProcessEnv = { ...process.env, KEYWARD_HOME: scratch.home, KEYWARD_SQLITE: scratch.sqlite, SOFTHSM2_CONF: scratch.softhsmConf };
    delete env.DATABASE_URL;
    delete env.KEYWARD_TLS_DIR;
    delete env.KEYWARD_SECRETS_DIR;
    const runtime = new KeywardRuntime(loadConfig(env));
    let head: { hash: string | null; revision: number } = { hash: null, revision: 0 };
    const summary = async () => {
      const i = await runtime.engine.inspect({ historyLimit: 0 });
      return { state: i.state, wizardState: i.wizardState, reason: i.context.reason };
    };
    return {
      restore: async () => {
        const { report } = await runtime.restore(archive, passphrase);
        const m = report.manifest;
        head = { hash: m.logChainHead, revision: Number(m.extras.logChainHeadRevision ?? 0) };
        const storage = await runtime.store.storage.storageType().catch(() => null);
        return { createdAt: m.createdAt, keywardVersion: m.keywardVersion, host: m.host.hostname, logChainHead: m.logChainHead, logChainHeadRevision: head.revision, storageType: storage };
      },
      state: summary,
      send: async (type, payload, secrets) => {
        const result = await runtime.send(type, payload, secrets, 'drill');
        return { outcome: result.outcome, state: result.state, wizardState: result.wizardState, message: result.message };
      },
      canary: async () => {
        await runtime.custody.ensureDek();
        return runtime.store.canary.check();
      },
      audit: async () => {
        const verdict = await runtime.audit();
        const rows = await runtime.store.lifecycle.chain(runtime.config.deployment);
        const atHead = rows.find((row) => row.revision === head.revision);
        const headMatches = head.hash === null ? rows.length === 0 || head.revision === 0 : atHead?.hash === head.hash;
        const continues = rows.length > head.revision;
        const message = !verdict.ok
          ? `the chain is broken: ${verdict.firstBroken?.message}`
          : !headMatches
            ? `revision ${head.revision} does not carry the archive's chain head`
            : `${rows.length} rows verified (${verdict.unverifiedRows} unverifiable), revision ${head.revision} carries the archive's head${continues ? `, ${rows.length - head.revision} new rows chain on from it` : ''}`;
        return { ok: verdict.ok && verdict.unverifiedRows === 0, headMatches: headMatches && continues, rows: rows.length, message };
      },
      close: () => runtime.close(),
    };
  });
}
