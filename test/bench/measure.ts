/** Small helpers for `npm run bench`: rates measured in alternating rounds, so drift hits both sides. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  baseline: number;
  /** keyward's figure over the raw baseline's, oriented so that higher is better. */
  ratio: number;
}

export interface BenchReport {
  bench: string;
  results: BenchResult[];
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Operations per second of a synchronous batch function, measured over `ms` milliseconds. */
function rate(batch: () => number, ms: number): number {
  const start = process.hrtime.bigint();
  let ops = 0;
  let elapsed = 0;
  while (elapsed < ms) {
    ops += batch();
    elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  }
  return (ops * 1000) / elapsed;
}

/** Median rates of keyward's and the baseline's batch, in alternating rounds after a warm-up. */
export function compareRates(ours: () => number, baseline: () => number, rounds = 7, ms = 250): { ours: number; baseline: number } {
  rate(ours, 100);
  rate(baseline, 100);
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < rounds; i++) {
    b.push(rate(baseline, ms));
    a.push(rate(ours, ms));
  }
  return { ours: median(a), baseline: median(b) };
}

export async function compareAsyncRates(ours: () => Promise<number>, baseline: () => Promise<number>, rounds = 5, ms = 300): Promise<{ ours: number; baseline: number }> {
  const measure = async (batch: () => Promise<number>) => {
    const start = process.hrtime.bigint();
    let ops = 0;
    let elapsed = 0;
    while (elapsed < ms) {
      ops += await batch();
      elapsed = Number(process.hrtime.bigint() - start) / 1e6;
    }
    return (ops * 1000) / elapsed;
  };
  await measure(ours);
  await measure(baseline);
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < rounds; i++) {
    b.push(await measure(baseline));
    a.push(await measure(ours));
  }
  return { ours: median(a), baseline: median(b) };
}

export function printTable(report: BenchReport): void {
  const rows = report.results.map((r) => [r.name, `${format(r.value)} ${r.unit}`, `${format(r.baseline)} ${r.unit}`, r.ratio.toFixed(3)]);
  const header = ['measure', 'keyward', 'raw baseline', 'ratio (higher is better)'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`\n${report.bench}\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${rows.map(line).join('\n')}\n`);
}

function format(value: number): string {
  if (value >= 100) return Math.round(value).toLocaleString('en-US');
  return value.toPrecision(3);
}
