import type { SendOutcome } from './lifecycle-engine';

/** The CLI's exit codes, one table (docs/cli.md shows it; scripts rely on it). */
export const EXIT = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  REFUSED: 3,
  CONFLICT: 4,
  REJECTED: 5,
  STARTUP_REFUSED: 6,
  STARTUP_FAILED: 7,
  OUTAGE: 8,
  AUDIT_BROKEN: 9,
  ARCHIVE_CORRUPT: 10,
  WRONG_PASSPHRASE: 11,
  ARCHIVE_TRUNCATED: 12,
  MANIFEST_MISMATCH: 13,
  ARCHIVE_TOO_NEW: 14,
  NOT_AN_ARCHIVE: 15,
  OUTPUT_EXISTS: 16,
  DRILL_FAILED: 17,
  HOME_IN_USE: 18,
  STORE_BEHIND: 19,
  STORE_MISSING: 20,
} as const;

export const EXIT_MEANINGS: Record<number, string> = {
  0: 'applied (or, for boot, the machine reached a state that serves)',
  1: 'an unexpected error; nothing is assumed changed',
  2: 'wrong command-line usage; nothing changed',
  3: 'refused: the event is not accepted now, or its payload or secrets are missing or invalid; nothing changed',
  4: 'conflict: another writer changed the lifecycle first; re-read and retry',
  5: 'rejected: the event was accepted but its effect failed (wrong password, lockout, failed script); only counters changed',
  6: 'start-up refused: the database is newer than this keyward (VERSION_DOWNGRADE); nothing changed',
  7: 'start-up failed, or the DEK is unrecoverable; the reason is printed',
  8: 'outage: the physical HSM cannot be reached; start-up retries',
  9: "audit: the transition log's hash chain is broken (the first broken row is printed)",
  10: 'archive corrupt: a byte was altered or segments reordered; nothing restored',
  11: 'wrong passphrase for the archive; nothing restored',
  12: 'archive truncated; nothing restored',
  13: "manifest mismatch: an entry's hash or size differs from the manifest; nothing restored",
  14: 'archive too new: made by a newer keyward or schema; nothing restored',
  15: 'not a keyward archive (or one with unacceptable parameters)',
  16: 'the backup output file exists already; it was not touched',
  17: 'the restore drill failed (the report says at which step)',
  18: 'another keyward process holds this home (a server, a restore): stop it first; nothing changed',
  19: 'start-up refused: the database is behind the high-water mark kept in the home (the store went back in time); nothing changed; --accept-older-store accepts it',
  20: 'start-up refused: the database is missing or empty beside the token, PIN file or TLS directory of an install; nothing changed; --fresh-start begins anew',
};

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
