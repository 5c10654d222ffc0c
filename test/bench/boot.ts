import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditTransitionLog } from '../../effects/transition-log-audit';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { KeywardRuntime } from '../../server/runtime';
import { growLog, largeCopy } from '../support/large-log';
import { SOFTHSM_MODULE } from '../support/softhsm';
import { softHsmInstallInProcess } from './installs';
import { BenchReport, interleave, scaled, printBench } from './measure';

const RUNS = scaled(21, 5);
const SMALL_ROWS = 100;
const LARGE_ROWS = 10_000;

const DEFINITIONS = [
  `keyward's own BOOT (a restart of a completed SoftHSM install: a new runtime, the DEK unwrapped with the KEK, VERSION_MATCH) on its store with a ` +
    `transition log grown to 100 rows, against the same BOOT on a copy of that store (same token, KEK and DEK) whose log was grown to ${LARGE_ROWS} rows ` +
    "as the engine writes them (an outage's BOOT every 30 s), alternating; ratio = time at ~100 rows / time at 10,000 (1 is flat; 0.833 is 1.2 times).",
  'whole-chain check: the same pair through the full verification `keyward audit verify` does (what every BOOT did before the checkpoint).',
];

/** `npm run bench -- boot`: BOOT time at a long transition log against a short one, in one run. */
export async function run(): Promise<BenchReport> {
  const root = mkdtempSync(join(tmpdir(), 'keyward-bench-boot-'));
  const home = join(root, 'install');
  mkdirSync(home);
  const installed = await softHsmInstallInProcess(home);
  let small = installed.runtime;
  await growLog(small, SMALL_ROWS);
  const large = await largeCopy({ config: small.config, runtime: small }, LARGE_ROWS, mkdtempSync(join(root, 'large-')));
  try {
    const restartSmall = async () => {
      await small.close();
      Pkcs11Module.open(SOFTHSM_MODULE).refresh();
      small = new KeywardRuntime(small.config);
    };
    const timedBoot = async (runtime: () => KeywardRuntime, restart: () => Promise<void>) => {
      await restart();
      const started = process.hrtime.bigint();
      const result = await runtime().boot('bench');
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (result.outcome !== 'applied' || result.state !== 'operational') throw new Error(`BOOT went to ${result.outcome} ${result.state}: ${result.message ?? ''}`);
      return ms;
    };
    // Each store's first BOOT verifies its new rows and moves the checkpoint: as after any outage.
    await timedBoot(large.runtime, large.restart);
    await timedBoot(() => small, restartSmall);
    const boots = await interleave(
      RUNS,
      () => timedBoot(large.runtime, large.restart),
      () => timedBoot(() => small, restartSmall),
    );
    const smallRows = (await small.store.lifecycle.load(small.config.deployment))!.revision;
    const largeRows = (await large.runtime().store.lifecycle.load(small.config.deployment))!.revision;
    const fullCheck = (runtime: () => KeywardRuntime) => async () => {
      const started = process.hrtime.bigint();
      const verdict = await auditTransitionLog(runtime().store, runtime().keyring, runtime().config.deployment);
      if (!verdict.ok) throw new Error('the transition log is broken');
      return Number(process.hrtime.bigint() - started) / 1e6;
    };
    const full = await interleave(
      scaled(9, 3),
      fullCheck(large.runtime),
      fullCheck(() => small),
    );
    return {
      bench: 'boot',
      definitions: DEFINITIONS,
      results: [
        { name: `BOOT at ${largeRows} log rows vs at ${smallRows} (median of ${RUNS})`, value: boots.ours, unit: 'ms', baseline: boots.baseline, ratio: boots.baseline / boots.ours },
        { name: `whole-chain check at ${largeRows} log rows vs at ${smallRows}`, value: full.ours, unit: 'ms', baseline: full.baseline, ratio: full.baseline / full.ours },
      ],
    };
  } finally {
    await large.close();
    await small.close();
    rmSync(root, { recursive: true, force: true });
  }
}

if (require.main === module) void printBench('boot', run);
