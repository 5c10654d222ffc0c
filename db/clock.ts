/** Times are stored as ISO-8601 UTC strings so SQLite and PostgreSQL return the same thing. */
export function now(): string {
  return new Date().toISOString();
}
