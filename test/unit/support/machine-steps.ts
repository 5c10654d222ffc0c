import { transition } from 'xstate';
import { lifecycleMachine } from '../../../machines/lifecycle-machine';
import { stateString } from '../../../machines/state-names';

/** Drives the pure machine as the engine would: events stamped with `at`, effects answered by hand. */
export type Snapshot = ReturnType<typeof lifecycleMachine.resolveState>;

export const AT = '2026-01-01T00:00:00.000Z';

export function send(snapshot: Snapshot, event: Record<string, unknown>): Snapshot {
  return transition(lifecycleMachine, snapshot, { at: AT, ...event } as never)[0];
}

/** The effect running now (its src), or null at rest. */
export function running(snapshot: Snapshot): string | null {
  const [child] = Object.values(snapshot.children) as { src?: unknown }[];
  return child ? (child.src as string) : null;
}

export function answer(snapshot: Snapshot, outcome: { output?: unknown; error?: { code: string; message: string; field?: string } }): Snapshot {
  const [id] = Object.keys(snapshot.children);
  if (!id) throw new Error(`nothing runs in ${stateString(snapshot)}`);
  return send(snapshot, outcome.error ? { type: `xstate.error.actor.${id}`, error: outcome.error } : { type: `xstate.done.actor.${id}`, output: outcome.output ?? {} });
}

/** Answers every effect as done with `outputs[src]`, recording the order. */
export function runToRest(snapshot: Snapshot, outputs: Record<string, unknown> = {}): { snapshot: Snapshot; effects: string[] } {
  const effects: string[] = [];
  for (let current = running(snapshot); current !== null; current = running(snapshot)) {
    if (effects.length > 20) throw new Error('the machine does not come to rest');
    effects.push(current);
    snapshot = answer(snapshot, { output: outputs[current] ?? {} });
  }
  return { snapshot, effects };
}
