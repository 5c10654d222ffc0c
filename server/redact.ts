const SECRET_KEY = /pin|password|passphrase|secret|private.?key|\bdek\b|token_?value/i;

/**
 * Defence in depth for what is logged or persisted: payloads never carry secrets by design, and
 * any field whose name says it is one is replaced anyway.
 */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = SECRET_KEY.test(key) ? '[redacted]' : redact(item, depth + 1);
  return out;
}
