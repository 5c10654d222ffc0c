import { getNextTransitions } from 'xstate';
import { LifecycleTag, lifecycleMachine } from './lifecycle-machine';

type Snapshot = ReturnType<typeof lifecycleMachine.resolveState>;

/** "wizard.hsmSetup.waiting": the state value as one dotted path. */
export function stateString(snapshot: { value: unknown }): string {
  const walk = (value: unknown): string => {
    if (typeof value === 'string') return value;
    const entries = Object.entries(value as Record<string, unknown>);
    return entries.map(([key, child]) => `${key}.${walk(child)}`).join(',');
  };
  return walk(snapshot.value);
}

type StateNode = (typeof lifecycleMachine)['root'];

/** The state nodes along a dotted path, the root first; empty for a name that is no state ("restored" after a restore is one). */
function nodesOf(state: string): StateNode[] {
  const nodes: StateNode[] = [lifecycleMachine.root];
  for (const key of state.split('.')) {
    const child = nodes[nodes.length - 1]!.states[key];
    if (!child) return [];
    nodes.push(child);
  }
  return nodes;
}

// The machine's definition never changes, so neither do a state's tags; every page asks for them.
const tagsByState = new Map<string, ReadonlySet<LifecycleTag>>();

/** The tags of a state, given as its dotted path: what the web, the CLI and the server read instead of name prefixes. */
export function tagsOfState(state: string): ReadonlySet<LifecycleTag> {
  let tags = tagsByState.get(state);
  if (!tags) {
    const nodes = nodesOf(state);
    tags = new Set(nodes.flatMap((node) => [...node.tags] as LifecycleTag[]));
    // Only names that are states: a name read from elsewhere is no reason for the map to grow.
    if (nodes.length > 0) tagsByState.set(state, tags);
  }
  return tags;
}

/**
 * The delay after which the machine, resting in this state, asks for a BOOT again (a physical-HSM
 * outage: `bootAfter` in the state's meta), by its name; null when it does not. The server arms it,
 * so it holds after a restart too (XState does not restore `after` timers from a persisted snapshot).
 */
export function bootRetryDelayOf(state: string): string | null {
  for (const node of nodesOf(state)) {
    const delay = (node.meta as { bootAfter?: string } | undefined)?.bootAfter;
    if (delay) return delay;
  }
  return null;
}

/** Trustpoint's wizard state name for where the machine is, or null outside the wizard. */
export function wizardStateOf(snapshot: Snapshot): string | null {
  for (const meta of Object.values(snapshot.getMeta())) {
    const name = (meta as { wizardState?: string } | undefined)?.wizardState;
    if (name) return name;
  }
  return null;
}

const GUARD_MESSAGES: Record<string, string> = {
  hsmTypeMatchesStorage: 'hsmType must match the chosen crypto storage (softhsm for SoftHSM, physical for a physical HSM)',
  physicalHsm: 'only a physical HSM can be declared lost; a SoftHSM token that is gone is detected at start-up',
  mayRotateKek: 'keys are rotated under HSM storage only (software storage has no KEK), and not while a DEK rotation is unfinished (finish it with ROTATE_DEK)',
  mayRotateDek: 'keys are rotated under HSM storage only (software storage has no DEK), and not while a KEK rotation is unfinished (finish it with ROTATE_KEK)',
  storageIsHsm: 'this needs HSM storage: software storage has no token PIN or backup password',
  noKeyMade: 'the keys are made already (the KEK and DEK exist under HSM storage): the set-up cannot go back past them',
  primaryKekLost:
    'a new first token is set up while operational only when the first KEK was lost and the second KEK kept the keyset (docs/lifecycle.md "A second KEK"), and hsmType must match the crypto storage',
  acknowledgesTheBreak: 'the revision acknowledged must be the first broken revision that start-up found (see `keyward audit verify`)',
};

/** Why an event is not accepted now, in words an operator can act on. */
export function describeRefusal(snapshot: Snapshot, event: { type: string }): string {
  const state = stateString(snapshot);
  const candidates = getNextTransitions(snapshot).filter((t) => t.eventType === event.type);
  if (candidates.length > 0) {
    const guards = candidates.map((t) => (typeof t.guard === 'object' && t.guard && 'type' in t.guard ? String(t.guard.type) : typeof t.guard === 'string' ? t.guard : '')).filter(Boolean);
    const reasons = guards.map((g) => GUARD_MESSAGES[g] ?? g);
    return `${event.type} is refused in state ${state}: ${reasons.join('; ') || 'its condition does not hold'}`;
  }
  const accepted = [...new Set(getNextTransitions(snapshot).map((t) => t.eventType as string))].filter((t) => !t.startsWith('xstate.') && t !== '');
  return `${event.type} is not accepted in state ${state}; accepted now: ${accepted.join(', ') || 'nothing but BOOT'}`;
}
