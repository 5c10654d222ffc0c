import type { StateValue } from 'xstate';
import { lifecycleMachine, INITIAL_CONTEXT } from '../../machines/lifecycle-machine';
import { machineGraph, overviewGraph, toOverviewDot } from '../../machines/graph';
import { failureOf, timeOf } from '../../server/web/history-rows';

/** The ids of the active state nodes at a dotted state ("wizard.hsmSetup.waiting"). */
const currentIdsAt = (state: string) => {
  const keys = state.split('.');
  const value = keys.slice(0, -1).reduceRight<StateValue>((inner, key) => ({ [key]: inner }), keys[keys.length - 1]!);
  const snapshot = lifecycleMachine.resolveState({ value, context: INITIAL_CONTEXT });
  return [...snapshot._nodes].map((node) => node.id);
};

/** The visualizer's compact view: the top-level states, the current one with its path, the crossings merged. */
describe('the overview of the top-level states', () => {
  it('has every top-level state once, the current one carrying the path below it', () => {
    const overview = overviewGraph(machineGraph(currentIdsAt('wizard.hsmSetup.waiting')));
    expect(overview.nodes.map((node) => node.key).sort()).toEqual(Object.keys(lifecycleMachine.root.states).sort());
    expect(overview.nodes.filter((node) => node.current)).toEqual([{ key: 'wizard', current: true, path: ['hsmSetup', 'waiting'] }]);
    expect(toOverviewDot(machineGraph(currentIdsAt('wizard.hsmSetup.waiting')))).toContain('"wizard\\nhsmSetup › waiting"');
  });

  it('marks an atomic top-level state with no path', () => {
    const overview = overviewGraph(machineGraph(currentIdsAt('operational')));
    expect(overview.nodes.filter((node) => node.current)).toEqual([{ key: 'operational', current: true, path: [] }]);
  });

  it('merges the transitions between two top-level states into one edge, and drops those inside one', () => {
    const { edges } = overviewGraph(machineGraph());
    const pairs = edges.map((edge) => `${edge.from ?? '*'}>${edge.to}`);
    expect(new Set(pairs).size).toBe(pairs.length);
    expect(edges.filter((edge) => edge.from === edge.to)).toEqual([]);
    expect(edges.find((edge) => edge.from === null && edge.to === 'startup')?.labels).toEqual(['BOOT']);
    expect(edges.find((edge) => edge.from === 'operational' && edge.to === 'rotatingKek')?.labels).toEqual(['ROTATE_KEK']);
    expect(edges.find((edge) => edge.from === 'changingTokenPin' && edge.to === 'operational')?.labels.sort()).toEqual(['done', 'failed']);
  });
});

describe('history rows', () => {
  it("reads an effect's failure from its error row only", () => {
    const error = { code: 'MODULE_MISSING', message: 'PKCS#11 module /x.so does not exist' };
    expect(failureOf({ eventType: 'setUpToken:error', payload: { error } })).toEqual(error);
    expect(failureOf({ eventType: 'setUpToken:error', payload: { error: { message: 'no code' } } })).toEqual({ message: 'no code', code: 'ERROR' });
    expect(failureOf({ eventType: 'setUpToken:done', payload: { error } })).toBeNull();
    expect(failureOf({ eventType: 'setUpToken:error', payload: { error: 'text' } })).toBeNull();
    expect(failureOf({ eventType: 'setUpToken:error', payload: {} })).toBeNull();
  });

  it('shows a log time in UTC to the second, whatever form the database returned', () => {
    expect(timeOf('2026-12-07T12:08:44.123Z')).toBe('2026-12-07 12:08:44 UTC');
    expect(timeOf(new Date('2026-12-07T12:08:44Z').toString())).toBe('2026-12-07 12:08:44 UTC');
    expect(timeOf('not a time')).toBe('not a time');
  });
});
