/**
 * A wait between rescans, drawn between half and one and a half times `intervalMs`. Nodes woken by
 * the same lifecycle change rescan together, and each rescan logs in, which rewrites the token file:
 * at one fixed interval they would keep hiding the token from one another scan after scan.
 */
export function outOfStep(intervalMs: number): number {
  return intervalMs * (0.5 + Math.random());
}
