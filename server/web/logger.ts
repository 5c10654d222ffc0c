import pino, { Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Every field that could carry a secret, at any of the depths the server logs. Secrets are never
 * passed to the logger by design; redaction is the second line of defence.
 */
const SECRET_FIELDS = [
  'password',
  'passwordConfirm',
  'pin',
  'soPin',
  'secret',
  'secrets',
  'passphrase',
  'passphraseConfirm',
  'cookie',
  'authorization',
  'setupCode',
  'sessionId',
  'estPassword',
  'cmpSharedSecret',
  '_csrf',
  'csrfToken',
];
const SECRET_KEYS = new Set([...SECRET_FIELDS, 'x-csrf-token', 'set-cookie']);
/** As deep as the server logs: a field, a field of a field, and one level further (req.headers.cookie). */
const REDACT_DEPTH = 3;

/**
 * The object of a log line with every field named in SECRET_FIELDS replaced, at any of the first
 * three levels. Copied only where a field is replaced: most lines have none, and pino's own
 * redaction parsed every one of its paths and cloned the object on every line (half of the memory a
 * status request allocated).
 */
export function redactLogged<T extends object>(value: T, depth = 1): T {
  let copy: Record<string, unknown> | null = null;
  for (const key of Object.keys(value)) {
    const item = (value as Record<string, unknown>)[key];
    const next = SECRET_KEYS.has(key) ? '[redacted]' : depth < REDACT_DEPTH && isPlain(item) ? redactLogged(item, depth + 1) : item;
    if (next === item) continue;
    copy ??= (Array.isArray(value) ? [...(value as unknown[])] : { ...value }) as Record<string, unknown>;
    copy[key] = next;
  }
  return (copy ?? value) as T;
}

/** Plain objects and arrays; an Error goes to its serializer whole (its fields are not enumerable). */
function isPlain(value: unknown): value is object {
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return true;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * Lines written once per event-loop turn: what a turn logged goes out in one synchronous write at its
 * end (a busy server logs a line per request, and a write per line was most of the log's cost). A
 * process that exits, by an uncaught error too, writes what is pending first; only a SIGKILL can lose
 * the lines of the turn it interrupts.
 */
export function turnBatched(out: pino.DestinationStream = pino.destination({ dest: 1, sync: true })): pino.DestinationStream {
  let pending = '';
  const flush = () => {
    if (pending === '') return;
    const lines = pending;
    pending = '';
    out.write(lines);
  };
  process.on('exit', flush);
  return {
    write(line: string) {
      if (pending === '') setImmediate(flush);
      pending += line;
    },
  };
}

let stdout: pino.DestinationStream | null = null;

/** The one logger of a server process: JSON lines on stdout (one batched writer per process), secrets redacted. */
export function createLogger(level: string, destination: pino.DestinationStream = (stdout ??= turnBatched())): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      formatters: { log: (object) => redactLogged(object) },
      serializers: { error: pino.stdSerializers.err },
    },
    destination,
  );
}
