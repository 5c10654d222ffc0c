import { join } from 'node:path';
import type { TransitionEntry } from '../../db/repositories/lifecycle-repository';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { MACHINE_VERSION } from '../../machines/lifecycle-machine';
import type { KeywardConfig } from '../../server/config';
import { KeywardRuntime } from '../../server/runtime';
import { testDir } from './run-dir';
import { SOFTHSM_MODULE } from './softhsm';

export interface LargeCopy {
  runtime: () => KeywardRuntime;
  /** A process restart: a new runtime, its keyring empty, the token re-read. */
  restart: () => Promise<void>;
  close: () => Promise<void>;
}

/**
 * A copy of an SQLite install's store (same token, KEK and DEK, same secrets and TLS directories)
 * whose transition log is then grown to `rows` rows (growLog). It has a home of its own: a home's
 * high-water mark follows one store.
 */
export async function largeCopy(original: { config: KeywardConfig; runtime: KeywardRuntime }, rows: number, directory = testDir('large-log'), deployment = 'default'): Promise<LargeCopy> {
  if (original.config.database.client !== 'sqlite') throw new Error('a large copy is made of an SQLite store');
  const filename = join(directory, 'keyward.sqlite');
  const config: KeywardConfig = { ...original.config, home: directory, database: { client: 'sqlite', filename } };
  await original.runtime.store.db.raw('VACUUM INTO ?', [filename]);
  let runtime = new KeywardRuntime(config, { busyWaitMs: 1000 });
  await growLog(runtime, rows, deployment);
  return {
    runtime: () => runtime,
    restart: async () => {
      await runtime.close();
      Pkcs11Module.open(SOFTHSM_MODULE).refresh();
      runtime = new KeywardRuntime(config, { busyWaitMs: 1000 });
    },
    close: () => runtime.close(),
  };
}

/** Grows a deployment's transition log to `rows` rows as the engine writes them (an outage's BOOT every 30 s), keyed with the DEK. */
export async function growLog(runtime: KeywardRuntime, rows: number, deployment = 'default'): Promise<void> {
  await runtime.custody.ensureDek();
  const chainKey = await runtime.chainKey();
  const repository = runtime.store.lifecycle;
  for (let current = (await repository.load(deployment))!; current.revision < rows; current = (await repository.load(deployment))!) {
    const at = new Date().toISOString();
    const entries: TransitionEntry[] = Array.from({ length: Math.min(500, rows - current.revision) }, () => ({
      eventType: 'BOOT',
      source: 'startup',
      fromState: current.state,
      toState: current.state,
      payload: { type: 'BOOT', at },
      at,
    }));
    await repository.commit(deployment, current.revision, { machineVersion: MACHINE_VERSION, snapshot: current.snapshot, state: current.state }, entries, chainKey, current.chainHead);
  }
}
