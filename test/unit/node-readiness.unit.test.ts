import type { StartupContext } from '../../machines/startup-context';
import { healthyStartup } from './support/healthy-startup';
import { deferredBoot, NodeBeat, NodeChecks, nodeReasons, nodeState, probeWouldEndOperation, readiness, servingPeer, versionOutsideWindow } from '../../server/node-readiness';

const HEALTHY: NodeChecks = {
  databaseReachable: true,
  databaseVersion: '1.4.0',
  nodeVersion: '1.4.0',
  tokenReachable: true,
  tokenProblem: null,
  dekLoaded: true,
  tlsCurrent: true,
  servedFingerprint: 'AA:BB',
  activeFingerprint: 'AA:BB',
};

const SETTLED = { booted: true, state: 'operational', watcherHealthy: true, bootDeferred: null };

const OPERATING: StartupContext = healthyStartup({ dbVersion: '1.4.0', appVersion: '1.4.0' });

const NOW = new Date('2026-01-01T00:00:30.000Z');
const beat = (nodeId: string, secondsAgo: number, fields: Partial<NodeBeat> = {}): NodeBeat => ({
  nodeId,
  ready: true,
  lastHeartbeat: new Date(NOW.getTime() - secondsAgo * 1000).toISOString(),
  heartbeatSeconds: 5,
  tokenReachable: true,
  dekLoaded: true,
  ...fields,
});

describe('a node’s readiness', () => {
  it('is ready only with the lifecycle settled in operation or the set-up and every own check passing', () => {
    expect(readiness(SETTLED, nodeReasons(HEALTHY))).toEqual({ ready: true, reasons: [] });
    expect(readiness({ ...SETTLED, state: 'wizard.cryptoStorage.waiting' }, nodeReasons(HEALTHY)).ready).toBe(true);
    expect(readiness({ ...SETTLED, state: 'autoRestore.password.waiting' }, []).reasons.map((r) => r.summary)).toEqual(['autoRestore.password.waiting']);
    expect(readiness({ ...SETTLED, booted: false }, []).reasons.map((r) => r.summary)).toEqual(['booting']);
    expect(readiness({ ...SETTLED, state: null }, []).reasons.map((r) => r.summary)).toEqual(['booting']);
    expect(readiness({ ...SETTLED, watcherHealthy: false }, nodeReasons({ ...HEALTHY, databaseReachable: false })).reasons.map((r) => r.summary)).toEqual(['the database does not answer']);
  });

  it('names each failed check; the public summary carries no token error code', () => {
    const reasons = nodeReasons({ ...HEALTHY, tokenReachable: false, tokenProblem: 'WRONG_PIN', dekLoaded: false, tlsCurrent: false, servedFingerprint: 'CC:DD' });
    expect(reasons.map((r) => r.detail)).toEqual([
      'this node cannot reach the token (WRONG_PIN)',
      'this node does not hold the primary DEK',
      'this node serves the TLS certificate CC:DD, not the active one (AA:BB)',
    ]);
    expect(reasons.map((r) => r.summary).join(' ')).not.toMatch(/PIN/);
    expect(readiness(SETTLED, reasons).ready).toBe(false);
  });

  it('ignores the checks that do not apply (no token, no DEK, no stored certificate yet)', () => {
    expect(nodeReasons({ ...HEALTHY, tokenReachable: null, dekLoaded: null, tlsCurrent: null, activeFingerprint: null, databaseVersion: null })).toEqual([]);
  });

  it('while its BOOT is deferred, says so first, whatever the lifecycle', () => {
    const problem = probeWouldEndOperation({ ...OPERATING, tokenPresent: null, kekPresent: null, dekAvailable: false, tokenProblem: 'MODULE_LOAD_FAILED' })!;
    const deferred = deferredBoot(problem, 'host-a:12:abc');
    const verdict = readiness({ ...SETTLED, booted: false, bootDeferred: deferred }, []);
    expect(verdict.ready).toBe(false);
    expect(verdict.reasons[0]!.summary).toBe("waiting for this node's own probe (another node serves the deployment)");
    expect(verdict.reasons[0]!.detail).toMatch(/MODULE_LOAD_FAILED.*node host-a:12:abc serves/);
  });
});

describe('the schema’s compatibility window', () => {
  it('is the version the database records: a newer database, an older one, or none readable is outside', () => {
    expect(versionOutsideWindow('1.4.0', '1.4.0')).toBeNull();
    expect(versionOutsideWindow('1.4.0+build.7', '1.4.0')).toBeNull();
    expect(versionOutsideWindow(null, '1.4.0')).toBeNull();
    expect(versionOutsideWindow('1.5.0', '1.4.0')!.detail).toBe('the database was upgraded to keyward 1.5.0; this node runs keyward 1.4.0: replace it with keyward 1.5.0');
    expect(versionOutsideWindow('1.4.1', '1.4.0')!.detail).toMatch(/upgraded to keyward 1\.4\.1/);
    expect(versionOutsideWindow('1.3.9', '1.4.0')!.detail).toMatch(/has not upgraded it/);
    expect(versionOutsideWindow('garbage', '1.4.0')!.detail).toMatch(/cannot read/);
    expect(versionOutsideWindow('1.5.0', '1.4.0')!.summary).not.toMatch(/1\.5/);
  });
});

describe('nodes in the table', () => {
  it('are gone after three of their own intervals without a heartbeat', () => {
    expect(nodeState(beat('a', 14), NOW)).toBe('ready');
    expect(nodeState(beat('a', 16), NOW)).toBe('gone');
    expect(nodeState(beat('a', 16, { heartbeatSeconds: 10 }), NOW)).toBe('ready');
    expect(nodeState(beat('a', 1, { ready: false }), NOW)).toBe('unready');
    expect(nodeState(beat('a', 1, { lastHeartbeat: 'never' }), NOW)).toBe('gone');
  });

  it('serve the deployment when another live one reaches the token and holds the DEK', () => {
    expect(servingPeer([beat('self', 0), beat('b', 2)], 'self', NOW)?.nodeId).toBe('b');
    expect(servingPeer([beat('self', 0)], 'self', NOW)).toBeNull();
    expect(servingPeer([beat('b', 20)], 'self', NOW)).toBeNull();
    expect(servingPeer([beat('b', 2, { tokenReachable: false })], 'self', NOW)).toBeNull();
    expect(servingPeer([beat('b', 2, { dekLoaded: null })], 'self', NOW)).toBeNull();
  });
});

describe('a BOOT that would end operation', () => {
  it('is one whose probe does not keep an operational install in operation, with the database current', () => {
    expect(probeWouldEndOperation(OPERATING)).toBeNull();
    expect(probeWouldEndOperation({ ...OPERATING, tokenPresent: false, kekPresent: false, dekAvailable: false })!.detail).toBe('this node sees no token with the configured label');
    expect(probeWouldEndOperation({ ...OPERATING, kekPresent: false, dekAvailable: false })!.detail).toBe('this node sees the token but not its KEK');
    expect(probeWouldEndOperation({ ...OPERATING, dekAvailable: false })!.detail).toBe('this node cannot unwrap the DEK');
    // A version change is BOOT's to decide, as always.
    expect(probeWouldEndOperation({ ...OPERATING, dbVersion: '1.3.0', tokenProblem: 'TOKEN_UNREACHABLE', dekAvailable: false })).toBeNull();
    expect(probeWouldEndOperation({ ...OPERATING, storageType: 'software', tokenPresent: null, kekPresent: null, dekAvailable: null })).toBeNull();
  });
});
