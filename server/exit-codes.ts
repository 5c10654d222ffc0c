import { EXIT } from '../errors/keyward-error';
import type { SendOutcome } from './lifecycle-engine';

// The exit codes live in the one error table (errors/keyward-error.ts); re-exported for their users here.
export { EXIT };

export function exitCodeFor(outcome: SendOutcome, state: string): number {
  switch (outcome) {
    case 'applied': {
      // Loaded here, not above: `keyward exit-codes` and `help` do without the machine.
      const tags = (require('../machines/state-names') as typeof import('../machines/state-names')).tagsOfState(state);
      if (tags.has('failed')) return EXIT.STARTUP_FAILED;
      if (tags.has('outage')) return EXIT.OUTAGE;
      if (tags.has('auditHold')) return EXIT.AUDIT_BROKEN;
      return EXIT.OK;
    }
    case 'rejected':
      return EXIT.REJECTED;
    case 'refused':
      return EXIT.REFUSED;
    case 'conflict':
      return EXIT.CONFLICT;
    case 'startup_refused':
      return EXIT.STARTUP_REFUSED;
  }
}
