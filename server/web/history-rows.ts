import type { TransitionRow } from '../../db/repositories/lifecycle-repository';

/** Why an event failed, as the transition log keeps it: a sentence for the reader, and its code. */
export interface Failure {
  message: string;
  code: string;
}

/** An effect's failure, from its log row (`<effect>:error` with the error the effect raised). */
export function failureOf(row: Pick<TransitionRow, 'eventType' | 'payload'>): Failure | null {
  if (!row.eventType.endsWith(':error')) return null;
  const error = row.payload.error as { code?: unknown; message?: unknown } | undefined;
  if (!error || typeof error !== 'object' || typeof error.message !== 'string') return null;
  return { message: error.message, code: typeof error.code === 'string' ? error.code : 'ERROR' };
}

/** A log time as "2026-12-07 12:08:44 UTC" (the database may hand back a Date's text or ISO). */
export function timeOf(at: string): string {
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) return at;
  return `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}
