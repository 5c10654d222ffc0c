import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pkcs11js from 'pkcs11js';
import { Pkcs11Module } from '../hsm/pkcs11-module';
import { initializeToken } from '../hsm/token-init';
import { tagsOfState } from '../machines/state-names';

/**
 * The restore drill (an untested backup is a hypothesis, not a backup): the archive is
 * restored onto a scratch store with a fresh SoftHSM token, auto-restore runs with the backup
 * password, a known canary secret must decrypt, the transition log must continue from the archive's
 * chain head, the recovery time is measured, and the scratch material is destroyed.
 */
export interface DrillStep {
  step: string;
  ok: boolean;
  ms: number;
  detail: string;
}

export interface DrillReport {
  archive: string;
  archiveCreatedAt: string | null;
  archiveKeywardVersion: string | null;
  archiveHost: string | null;
  ok: boolean;
  rtoSeconds: number;
  steps: DrillStep[];
  scratchHome: string;
  scratchDestroyed: boolean;
}

/** What the drill drives: a keyward on a scratch home, restored (and so booted) in this process. */
export interface DrillHarness {
  restore(scratch: ScratchStore): Promise<{ createdAt: string; keywardVersion: string; host: string; logChainHead: string | null; logChainHeadRevision: number; storageType: string | null }>;
  /** Where the machine stands (the restore ends with a BOOT on the scratch store). */
  state(): Promise<{ state: string; wizardState: string | null; reason: string | null }>;
  send(type: string, payload: Record<string, unknown>, secrets: Record<string, string>): Promise<{ outcome: string; state: string; wizardState: string | null; message: string | null }>;
  canary(): Promise<{ ok: boolean; message: string }>;
  audit(): Promise<{ ok: boolean; headMatches: boolean; rows: number; message: string }>;
  close(): Promise<void>;
}

export interface ScratchStore {
  home: string;
  tokenDir: string;
  softhsmConf: string;
  sqlite: string;
}

export const DRILL_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export async function makeScratchStore(): Promise<ScratchStore> {
  const home = await mkdtemp(join(tmpdir(), 'keyward-drill-'));
  const tokenDir = join(home, 'tokens');
  await mkdir(tokenDir, { mode: 0o700 });
  const softhsmConf = join(home, 'softhsm2.conf');
  await writeFile(softhsmConf, `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  return { home, tokenDir, softhsmConf, sqlite: join(home, 'keyward.sqlite') };
}

export async function runDrill(archive: string, backupPassword: string, open: (scratch: ScratchStore) => Promise<DrillHarness>, clock: () => number = () => Date.now()): Promise<DrillReport> {
  const steps: DrillStep[] = [];
  const started = clock();
  const scratch = await makeScratchStore();
  let harness: DrillHarness | null = null;
  const report: DrillReport = { archive, archiveCreatedAt: null, archiveKeywardVersion: null, archiveHost: null, ok: false, rtoSeconds: 0, steps, scratchHome: scratch.home, scratchDestroyed: false };
  const step = async (name: string, fn: () => Promise<string>): Promise<boolean> => {
    const t = clock();
    try {
      steps.push({ step: name, ok: true, ms: 0, detail: await fn() });
    } catch (error) {
      steps.push({ step: name, ok: false, ms: 0, detail: (error as Error).message });
    }
    steps[steps.length - 1]!.ms = clock() - t;
    return steps[steps.length - 1]!.ok;
  };
  try {
    harness = await open(scratch);
    let archiveInfo: Awaited<ReturnType<DrillHarness['restore']>> | null = null;
    const ok =
      (await step('restore onto a scratch store', async () => {
        archiveInfo = await harness!.restore(scratch);
        report.archiveCreatedAt = archiveInfo.createdAt;
        report.archiveKeywardVersion = archiveInfo.keywardVersion;
        report.archiveHost = archiveInfo.host;
        return `archive of ${archiveInfo.createdAt} from ${archiveInfo.host} (keyward ${archiveInfo.keywardVersion}, ${archiveInfo.storageType ?? 'no'} storage)`;
      })) &&
      (await step('boot on the new host', async () => {
        const result = await harness!.state();
        return `${result.state} (${result.wizardState ?? '-'})`;
      })) &&
      (await step('auto-restore: set up a fresh token, give the backup password', async () => autoRestore(harness!, scratch, backupPassword))) &&
      (await step('a known canary secret decrypts', async () => {
        const canary = await harness!.canary();
        if (!canary.ok) throw new Error(canary.message);
        return canary.message;
      })) &&
      (await step("the transition log continues from the archive's chain head", async () => {
        const audit = await harness!.audit();
        if (!audit.ok || !audit.headMatches) throw new Error(audit.message);
        return audit.message;
      }));
    report.rtoSeconds = (clock() - started) / 1000;
    report.ok = ok;
  } finally {
    await harness?.close().catch(() => undefined);
    await rm(scratch.home, { recursive: true, force: true });
    report.scratchDestroyed = !existsSync(scratch.home);
  }
  return report;
}

/** Drives the machine from wherever the restored store's BOOT left it to operational. */
async function autoRestore(harness: DrillHarness, scratch: ScratchStore, backupPassword: string): Promise<string> {
  const done: string[] = [];
  for (let i = 0; i < 4; i++) {
    const { state, wizardState, reason } = await harness.state();
    if (state === 'operational') return done.length ? done.join(', ') : 'no recovery needed (software storage, or the KEK was reachable)';
    if (tagsOfState(state).has('outage')) {
      // A physical HSM's archive on the scratch host: its token is not here by design, so it is lost.
      const declared = await harness.send('DECLARE_TOKEN_LOST', {}, {});
      if (declared.outcome !== 'applied') throw new Error(`declaring the physical token lost: ${declared.message}`);
      done.push('the physical token declared lost on the scratch host');
      continue;
    }
    if (wizardState === 'WIZARD_SETUP_HSM_AUTORESTORE') {
      const pin = randomBytes(16).toString('hex');
      const soPin = randomBytes(16).toString('hex');
      const storage = (await harness.send('SETUP_HSM', { hsmType: 'softhsm', modulePath: DRILL_MODULE, label: 'Trustpoint-SoftHSM' }, { pin, soPin }).catch(() => null)) ?? null;
      if (storage?.outcome === 'refused') {
        // A physical HSM's archive: the drill stands a SoftHSM token in for it, made as a vendor tool would.
        makePhysicalStandIn(scratch, pin, soPin);
        const physical = await harness.send('SETUP_HSM', { hsmType: 'physical', modulePath: DRILL_MODULE, label: 'Trustpoint-SoftHSM' }, { pin });
        if (physical.outcome !== 'applied') throw new Error(`token set-up: ${physical.message}`);
      } else if (storage?.outcome !== 'applied') throw new Error(`token set-up: ${storage?.message}`);
      done.push('fresh token set up');
      const recovered = await harness.send('SUBMIT_BACKUP_PASSWORD', {}, { password: backupPassword });
      if (recovered.state !== 'operational') throw new Error(`backup password: ${recovered.message ?? recovered.state}`);
      done.push('DEK recovered with the backup password and re-wrapped under the new KEK');
      return done.join(', ');
    }
    if (wizardState === 'WIZARD_AUTO_RESTORE_PASSWORD') {
      const recovered = await harness.send('SUBMIT_BACKUP_PASSWORD', {}, { password: backupPassword });
      if (recovered.state !== 'operational') throw new Error(`backup password: ${recovered.message ?? recovered.state}`);
      return 'DEK recovered with the backup password';
    }
    throw new Error(`the restored store booted to ${state} (${wizardState ?? '-'}), not to auto-restore or operational${reason ? `: ${reason}` : ''}`);
  }
  throw new Error('auto-restore did not reach operational');
}

function makePhysicalStandIn(scratch: ScratchStore, pin: string, soPin: string): void {
  // In this process, so that the PINs stay in memory; SoftHSM reads the scratch configuration at re-initialization.
  process.env.SOFTHSM2_CONF = scratch.softhsmConf;
  const module = Pkcs11Module.open(DRILL_MODULE);
  module.refresh();
  const free = module.api.C_GetSlotList(true).find((slot) => (module.api.C_GetTokenInfo(slot).flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0);
  if (!free) throw new Error('the scratch token directory offers no free slot');
  initializeToken(module.api, free, 'Trustpoint-SoftHSM', soPin, pin);
  module.refresh();
}

export function formatDrillReport(report: DrillReport): string {
  const lines = [
    `restore drill of ${report.archive}`,
    `archive: ${report.archiveCreatedAt ?? '?'} from ${report.archiveHost ?? '?'} (keyward ${report.archiveKeywardVersion ?? '?'})`,
    ...report.steps.map((s) => `  ${s.ok ? 'ok  ' : 'FAIL'} ${s.step} (${(s.ms / 1000).toFixed(2)} s): ${s.detail}`),
    `RTO: ${report.rtoSeconds.toFixed(2)} s (from an empty host to a verified secret)`,
    `scratch store ${report.scratchHome} destroyed: ${report.scratchDestroyed ? 'yes' : 'NO'}`,
    `result: ${report.ok ? 'PASS' : 'FAIL'}`,
  ];
  return `${lines.join('\n')}\n`;
}
