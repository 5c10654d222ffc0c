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
export const REDACT_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((field) => `*.${field}`),
  ...SECRET_FIELDS.map((field) => `*.*.${field}`),
  'req.headers.cookie',
  'req.headers.authorization',
  'req.headers["x-csrf-token"]',
  'res.headers["set-cookie"]',
];

/** The one logger of a server process: JSON lines on stdout, secrets redacted. */
export function createLogger(level: string, destination: pino.DestinationStream = pino.destination({ dest: 1, sync: true })): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { error: pino.stdSerializers.err },
    },
    destination,
  );
}
