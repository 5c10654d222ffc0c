import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { getShortestPaths } from 'xstate/graph';
import { lifecycleMachine } from '../../machines/lifecycle-machine';
import type { StartupContext } from '../../machines/startup-context';
import { stateString } from '../../machines/state-names';
import packageJson from '../../package.json';
import { CliHome } from '../support/cli';
import { newSecret } from '../support/secrets';
import { destroyKek, SOFTHSM_MODULE } from '../support/softhsm';

/**
 * Model-based: xstate/graph's shortest paths to every state reachable by users and restarts, each
 * replayed through the real engine in real processes (the CLI), checking the persisted state after
 * every event and the transition log for every step, effects included.
 */
jest.setTimeout(300_000);

type Snapshot = ReturnType<typeof lifecycleMachine.resolveState>;
type ModelEvent = { type: string; [key: string]: unknown };

const AT = '2026-01-01T00:00:00.000Z';
const HSM = { hsmType: 'softhsm', modulePath: SOFTHSM_MODULE, label: 'Trustpoint-SoftHSM', slot: null };

/** The BOOTs a real restart can produce, by what the replay does to the world before `keyward boot`. */
type Reality = 'fresh' | 'restart' | 'token-gone' | 'kek-gone';
function startup(reality: Reality, storageType: 'software' | 'softhsm' | null): StartupContext {
  const fresh = reality === 'fresh';
  const hsm = storageType === 'softhsm';
  return {
    dbInitialized: !fresh,
    dbVersion: fresh ? null : packageJson.version,
    appVersion: packageJson.version,
    schemaPending: false,
    wizardCompleted: !fresh,
    storageType: fresh ? null : storageType,
    tokenPresent: hsm ? reality !== 'token-gone' : null,
    kekPresent: hsm ? reality === 'restart' : null,
    dekAvailable: hsm ? reality === 'restart' : null,
    backupCopyPresent: hsm,
    tokenProblem: null,
    logBrokenAt: null,
    logProblem: null,
    probedAt: AT,
  };
}

function modelEvents(snapshot: Snapshot): ModelEvent[] {
  const pending = Object.keys(snapshot.children);
  // The engine runs an effect to its end before anything else is accepted.
  if (pending.length > 0) {
    return pending.map((id) => ({ type: `xstate.done.actor.${id}`, output: { credentialId: 1, fingerprintSha256: 'AA', notAfter: AT, origin: 'new' }, at: AT }));
  }
  const storage = snapshot.context.storageType === 'softhsm' ? 'softhsm' : 'software';
  if (snapshot.matches('unbooted')) return [{ type: 'BOOT', reality: 'fresh', startup: startup('fresh', null), at: AT }];
  if (snapshot.matches('operational')) {
    const realities: Reality[] = storage === 'softhsm' ? ['restart', 'token-gone', 'kek-gone'] : ['restart'];
    return realities.map((reality) => ({ type: 'BOOT', reality, startup: startup(reality, storage), at: AT }));
  }
  return [
    { type: 'SELECT_STORAGE', storageType: 'software', at: AT },
    { type: 'SELECT_STORAGE', storageType: 'softhsm', at: AT },
    { type: 'SETUP_HSM', ...HSM, at: AT },
    { type: 'CHOOSE_FRESH', at: AT },
    { type: 'GENERATE_TLS', subjectAltNames: ['localhost', '127.0.0.1'], at: AT },
    { type: 'APPLY_TLS', at: AT },
    { type: 'CANCEL_TLS', at: AT },
    { type: 'SET_BACKUP_PASSWORD', at: AT },
    { type: 'ADD_DEMO_DATA', at: AT },
    { type: 'SKIP_DEMO_DATA', at: AT },
    { type: 'CREATE_ADMIN', username: 'admin', at: AT },
    { type: 'SUBMIT_BACKUP_PASSWORD', at: AT },
  ];
}

interface Step {
  event: ModelEvent;
  state: string;
  /** The state still runs an effect: the engine will not rest here. */
  pending: boolean;
}

const paths: Step[][] = getShortestPaths(lifecycleMachine, {
  events: modelEvents as never,
  serializeState: (snapshot) => `${JSON.stringify(snapshot.value)}|${snapshot.context.storageType}`,
}).map((path) =>
  path.steps.filter((s) => (s.event as { type: string }).type !== 'xstate.init').map((s) => ({ event: s.event, state: stateString(s.state), pending: Object.keys(s.state.children).length > 0 })),
);

/** A move: one external event and the effect outcomes that follow it. Paths share their first moves. */
interface Move {
  key: string;
  steps: Step[];
  children: Move[];
}

function movesOf(path: Step[]): Step[][] {
  const moves: Step[][] = [];
  for (const step of path) {
    if (step.event.type.startsWith('xstate.done.actor')) moves.at(-1)!.push(step);
    else moves.push([step]);
  }
  return moves;
}

const moveKey = (steps: Step[]) => `${steps[0]!.event.type}:${JSON.stringify(steps[0]!.event.reality ?? steps[0]!.event.storageType ?? '')}`;

/** Every path in one tree of moves; a node keeps the longest version of its move. */
const root: Move = { key: 'root', steps: [], children: [] };
for (const path of paths) {
  let node = root;
  for (const steps of movesOf(path)) {
    let child = node.children.find((c) => c.key === moveKey(steps));
    if (!child) node.children.push((child = { key: moveKey(steps), steps, children: [] }));
    if (steps.length > child.steps.length) child.steps = steps;
    node = child;
  }
}

const secrets = { pin: newSecret('pin'), soPin: newSecret('sopin'), backup: `Bk-${newSecret('backup')}`, admin: `Ad-${newSecret('admin')}` };

function replayEvent(cli: CliHome, event: ModelEvent): number | null {
  const args = ['send', event.type];
  const payload = Object.fromEntries(Object.entries(event).filter(([k]) => !['type', 'at'].includes(k)));
  if (Object.keys(payload).length > 0) args.push('--payload', JSON.stringify(payload));
  const given: Record<string, string> = {
    SETUP_HSM: `--secret pin=file:${cli.secretFile(secrets.pin)} --secret soPin=file:${cli.secretFile(secrets.soPin)}`,
    SET_BACKUP_PASSWORD: `--secret password=file:${cli.secretFile(secrets.backup)}`,
    SUBMIT_BACKUP_PASSWORD: `--secret password=file:${cli.secretFile(secrets.backup)}`,
    CREATE_ADMIN: `--secret password=file:${cli.secretFile(secrets.admin)}`,
  };
  if (given[event.type]) args.push(...given[event.type]!.split(' '));
  return cli.run(args).status;
}

function makeReal(cli: CliHome, reality: Reality): void {
  if (reality === 'token-gone') {
    rmSync(cli.tokenDir, { recursive: true, force: true });
    mkdirSync(cli.tokenDir);
  }
  if (reality === 'kek-gone') {
    destroyKek(cli.env.SOFTHSM2_CONF!, secrets.pin);
  }
}

/** A copy of an installation at a branch point: database, token, secrets, TLS files. */
function fork(from: CliHome): CliHome {
  const copy = new CliHome('model');
  const skip = ['cli.log', 'softhsm2.conf', 'given'].map((name) => join(from.home, name));
  cpSync(from.home, copy.home, { recursive: true, verbatimSymlinks: true, filter: (src) => !skip.includes(src) });
  return copy;
}

describe('model-based: shortest paths to every state, replayed through the CLI', () => {
  it('reaches every state of the user-facing lifecycle', () => {
    const reached = new Set(paths.map((p) => p.at(-1)?.state ?? 'unbooted'));
    for (const state of [
      'wizard.cryptoStorage.waiting',
      'wizard.hsmSetup.creatingDek',
      'wizard.tlsApply.waiting',
      'wizard.backupPassword.setting',
      'wizard.demoData.adding',
      'wizard.createAdmin.creating',
      'operational',
      'autoRestore.hsmSetup.settingUpToken',
      'autoRestore.password.recovering',
      'autoRestore.password.loadingTls',
      'autoRestore.hsmSetup.deactivatingLostCas',
    ]) {
      expect(reached).toContain(state);
    }
    expect(paths.length).toBeGreaterThan(40);
  });

  it('replays every path, each event checked against the persisted state and each step against the log', () => {
    let replayedPaths = 0;
    const replay = (node: Move, cli: CliHome, route: string[]): void => {
      if (node.children.length === 0) replayedPaths += 1;
      // Branches are copies of the installation as it stands, made before any branch moves on.
      const homes = node.children.map((_, k) => (k === 0 ? cli : fork(cli)));
      node.children.forEach((move, k) => {
        const home = homes[k]!;
        const event = move.steps[0]!.event;
        const where = [...route, event.reality ? `BOOT(${event.reality as Reality})` : event.type];
        const before = home.inspect().revision ?? 0;
        if (event.type === 'BOOT') makeReal(home, event.reality as Reality);
        const status = event.type === 'BOOT' ? home.run(['boot']).status : replayEvent(home, event);
        expect({ where, status }).toEqual({ where, status: 0 });
        const after = home.inspect();
        const rows = after.history.filter((h) => (h.revision as number) > before).map((r) => r.toState);
        const last = move.steps.at(-1)!;
        // A path that ends inside an effect is a prefix of what the engine does: it runs the effect on.
        if (last.pending) expect({ where, rows: rows.slice(0, move.steps.length) }).toEqual({ where, rows: move.steps.map((s) => s.state) });
        else {
          expect({ where, rows }).toEqual({ where, rows: move.steps.map((s) => s.state) });
          expect({ where, state: after.state }).toEqual({ where, state: last.state });
        }
        replay(move, home, where);
      });
    };
    const fresh = new CliHome('model');
    replay(root, fresh, []);
    expect(replayedPaths).toBeGreaterThan(5);
  });
});
