/**
 * knex puts the whole statement, values included, in front of a driver's error message
 * ("insert into devices (...) values ('…') - SQLITE_CONSTRAINT: …"). Values can be secrets (plaintext
 * under software storage), so anything that reports an error shows the driver's own words only.
 */
export function safeErrorMessage(error: unknown, max = 300): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split(' - ').pop()!.slice(0, max);
}
