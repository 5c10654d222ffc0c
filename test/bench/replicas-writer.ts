import type { LifecycleEvent } from '../../machines/events';
import { tagsOfState } from '../../machines/state-names';
import { loadConfig } from '../../server/config';
import { KeywardRuntime } from '../../server/runtime';
import { SecretBox } from '../../server/secret-box';

/**
 * One node's engine for `npm run bench -- replicas`, in a process of its own (forked with IPC; its
 * environment names the home, the database and the deployment row). It BOOTs once for real, then
 * answers each message {durationMs} by sending events for that long and reporting
 * {applied, conflicts, ms}. The event is events.ts's: BOOT with the probe of a physical-HSM outage,
 * accepted from any state, with no effect: the engine's commit path only (load, transition, one CAS
 * update and one chained log row), contended when several writers share the row.
 */
async function main(): Promise<void> {
  const runtime = new KeywardRuntime(loadConfig(process.env));
  const boot = await runtime.boot('bench-writer');
  if (boot.outcome !== 'applied') throw new Error(`BOOT was ${boot.outcome}: ${boot.message ?? ''}`);
  const probed = (await runtime.engine.load()).snapshot.context.startup!;
  const outageBoot = (): LifecycleEvent => {
    const at = new Date().toISOString();
    return {
      type: 'BOOT',
      at,
      startup: {
        ...probed,
        wizardCompleted: true,
        storageType: 'physical_hsm',
        tokenPresent: false,
        kekPresent: null,
        dekAvailable: false,
        backupCopyPresent: true,
        tokenProblem: 'TOKEN_MISSING',
        probedAt: at,
      },
    };
  };

  process.on('message', (message: { durationMs: number }) => {
    void (async () => {
      let applied = 0;
      let conflicts = 0;
      const started = performance.now();
      while (performance.now() - started < message.durationMs) {
        const result = await runtime.engine.send(outageBoot(), { source: 'bench', secrets: new SecretBox() });
        if (result.outcome === 'applied' && tagsOfState(result.state).has('outage')) applied += 1;
        else if (result.outcome === 'conflict') conflicts += 1;
        else throw new Error(`the bench event went to ${result.outcome} ${result.state}: ${result.message ?? ''}`);
      }
      process.send!({ applied, conflicts, ms: performance.now() - started });
    })().catch((error: Error) => process.send!({ error: error.message }));
  });
  process.on('disconnect', () => void runtime.close().finally(() => process.exit(0)));
  process.send!({ ready: true });
}

main().catch((error: Error) => {
  process.send?.({ error: error.message });
  process.exitCode = 1;
});
