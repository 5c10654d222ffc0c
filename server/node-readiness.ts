import type { StartupContext } from '../machines/startup-context';
import { keepsOperation, versionScenario } from '../machines/startup-scenario';
import { compareVersions, parseVersion } from '../machines/version';
import { isReady } from './web/lifecycle-phase';

/**
 * A node's own readiness (docs/deployment.md "Several replicas"), apart from the deployment's
 * lifecycle: what this process sees of the database, the token, the DEK and its TLS certificate.
 * Pure: server/node-health.ts gathers the facts, /readyz and the nodes table show the verdict.
 */

/** A node whose heartbeat is older than this many of its own intervals is gone. */
export const GONE_AFTER_BEATS = 3;

export interface NodeChecks {
  databaseReachable: boolean;
  /** The keyward version the database records (the last one that upgraded it); null before the first BOOT. */
  databaseVersion: string | null;
  nodeVersion: string;
  /** Null where no token is configured (software storage, or the wizard before its HSM step). */
  tokenReachable: boolean | null;
  /** Why the token could not be reached (its error code), when it could not. */
  tokenProblem: string | null;
  /** Null where the database holds no wrapped DEK; otherwise whether this process holds the primary DEK. */
  dekLoaded: boolean | null;
  /** Null while the database has no active TLS credential (the wizard's temporary certificate). */
  tlsCurrent: boolean | null;
  servedFingerprint: string | null;
  activeFingerprint: string | null;
}

/**
 * Why a node is not ready: `summary` is what the public /readyz says (no token error code, no
 * version: a probe is anonymous), `detail` what the status page and `keyward inspect` show.
 */
export interface Reason {
  summary: string;
  detail: string;
}

const reason = (summary: string, detail: string = summary): Reason => ({ summary, detail });

/**
 * The schema's compatibility window: a node runs only against a database that records its own
 * version (build metadata aside). A newer node upgrades the database at its BOOT and the older ones
 * then fall outside; an older node is refused at start (VERSION_DOWNGRADE). Null when inside.
 */
export function versionOutsideWindow(databaseVersion: string | null, nodeVersion: string): Reason | null {
  if (databaseVersion === null) return null;
  const summary = "the database's keyward version is outside this node's compatibility window";
  if (!parseVersion(databaseVersion)) return reason(summary, `the database records keyward version "${databaseVersion}", which this node (keyward ${nodeVersion}) cannot read`);
  const order = compareVersions(databaseVersion, nodeVersion);
  if (order > 0) return reason(summary, `the database was upgraded to keyward ${databaseVersion}; this node runs keyward ${nodeVersion}: replace it with keyward ${databaseVersion}`);
  if (order < 0) return reason(summary, `the database records keyward ${databaseVersion}; this node runs keyward ${nodeVersion} and has not upgraded it (its BOOT upgrades it)`);
  return null;
}

/** Why this node, whatever the lifecycle says, cannot serve: one reason per failed check. */
export function nodeReasons(checks: NodeChecks): Reason[] {
  if (!checks.databaseReachable) return [reason('the database does not answer')];
  const reasons: Reason[] = [];
  const version = versionOutsideWindow(checks.databaseVersion, checks.nodeVersion);
  if (version) reasons.push(version);
  if (checks.tokenReachable === false) {
    reasons.push(reason('this node cannot reach the token', `this node cannot reach the token${checks.tokenProblem ? ` (${checks.tokenProblem})` : ''}`));
  }
  if (checks.dekLoaded === false) reasons.push(reason('this node does not hold the primary DEK'));
  if (checks.tlsCurrent === false) reasons.push(reason(`this node serves the TLS certificate ${checks.servedFingerprint}, not the active one (${checks.activeFingerprint})`));
  return reasons;
}

export interface LifecycleView {
  /** This process's BOOT has settled (false while it waits for its own probe: see bootDeferred). */
  booted: boolean;
  /** The persisted lifecycle state as last read, or null when it was never read. */
  state: string | null;
  /** The database answered the lifecycle watcher lately. */
  watcherHealthy: boolean;
  /** Why this node did not send its BOOT (another node serves the deployment), or null. */
  bootDeferred: Reason | null;
}

export interface Readiness {
  ready: boolean;
  reasons: Reason[];
}

/** /readyz: the lifecycle settled in operation or in the set-up, and this node's own checks pass. */
export function readiness(lifecycle: LifecycleView, node: readonly Reason[]): Readiness {
  const reasons: Reason[] = [];
  if (lifecycle.bootDeferred) reasons.push(lifecycle.bootDeferred);
  else if (!lifecycle.booted || lifecycle.state === null) reasons.push(reason('booting'));
  else if (!isReady(lifecycle.state)) reasons.push(reason(lifecycle.state));
  if (lifecycle.state !== null && !lifecycle.watcherHealthy) reasons.push(reason('the database does not answer'));
  for (const one of node) if (!reasons.some((r) => r.detail === one.detail)) reasons.push(one);
  return { ready: reasons.length === 0, reasons };
}

/** What another node's row says, as far as readiness and liveness go. */
export interface NodeBeat {
  nodeId: string;
  ready: boolean;
  lastHeartbeat: string;
  heartbeatSeconds: number;
  tokenReachable: boolean | null;
  dekLoaded: boolean | null;
}

export type NodeState = 'ready' | 'unready' | 'gone';

export function isGone(beat: NodeBeat, now: Date): boolean {
  const last = Date.parse(beat.lastHeartbeat);
  return !Number.isFinite(last) || now.getTime() - last > GONE_AFTER_BEATS * beat.heartbeatSeconds * 1000;
}

export function nodeState(beat: NodeBeat, now: Date): NodeState {
  if (isGone(beat, now)) return 'gone';
  return beat.ready ? 'ready' : 'unready';
}

/** Another live node that reaches the token and holds the DEK: the deployment is served, whatever this node's probe says. */
export function servingPeer<T extends NodeBeat>(beats: readonly T[], selfId: string, now: Date): T | null {
  return beats.find((beat) => beat.nodeId !== selfId && !isGone(beat, now) && beat.tokenReachable === true && beat.dekLoaded === true) ?? null;
}

/**
 * Whether this node's BOOT would take an operational deployment out of operation on its own
 * probe's word: the database current (a version change BOOTs as always) and the probe not one that
 * keeps operation. Null when BOOT keeps operation; otherwise what the probe found.
 */
export function probeWouldEndOperation(startup: StartupContext): Reason | null {
  if (versionScenario(startup) !== 'VERSION_MATCH' || keepsOperation(startup)) return null;
  if (startup.tokenProblem) return reason('this node cannot reach the token', `the token cannot be reached from this node (${startup.tokenProblem})`);
  if (startup.tokenPresent === false) return reason('this node cannot reach the token', 'this node sees no token with the configured label');
  if (startup.kekPresent === false) return reason('this node cannot reach the token', 'this node sees the token but not its KEK');
  return reason('this node does not hold the primary DEK', 'this node cannot unwrap the DEK');
}

/** The reason a node gives while it waits for its own probe rather than sending BOOT. */
export function deferredBoot(problem: Reason, peer: string): Reason {
  return reason(
    "waiting for this node's own probe (another node serves the deployment)",
    `${problem.detail}; node ${peer} serves the deployment (it reaches the token and holds the DEK), so this node re-probes instead of sending BOOT`,
  );
}
