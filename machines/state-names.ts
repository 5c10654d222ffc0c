import { getNextTransitions } from 'xstate';
import type { lifecycleMachine } from './lifecycle-machine';

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

/** Trustpoint's wizard state name for where the machine is (design §6), or null outside the wizard. */
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
  const accepted = [...new Set(getNextTransitions(snapshot).map((t) => t.eventType))].filter((t) => !t.startsWith('xstate.') && t !== '');
  return `${event.type} is not accepted in state ${state}; accepted now: ${accepted.join(', ') || 'nothing but BOOT'}`;
}
