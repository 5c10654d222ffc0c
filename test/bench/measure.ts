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
  /** What each baseline is, printed above the table (not part of the JSON line). */
  definitions?: string[];
}

/** KEYWARD_BENCH_QUICK=1: few, short rounds, for developing a bench on a shared machine. */
export const QUICK = process.env.KEYWARD_BENCH_QUICK === '1';

/** `full` normally, `quick` under KEYWARD_BENCH_QUICK=1. */
export function scaled<T>(full: T, quick: T): T {
  return QUICK ? quick : full;
}

/** The JSON line: bench and results only, each result with exactly its five fields. */
export function toJson(report: BenchReport): string {
  return JSON.stringify({ bench: report.bench, results: report.results.map(({ name, value, unit, baseline, ratio }) => ({ name, value, unit, baseline, ratio })) });
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface Interleaved {
  ours: number;
  baseline: number;
  oursSamples: number[];
  baselineSamples: number[];
}

/**
 * Medians of `rounds` samples of keyward and of the baseline, taken alternately (baseline first in
 * even rounds, keyward first in odd ones) after one unrecorded warm-up sample of each, so that drift
 * and order effects hit both sides alike.
 */
export async function interleave(rounds: number, ours: () => Promise<number> | number, baseline: () => Promise<number> | number, options: { warmup?: boolean } = {}): Promise<Interleaved> {
  if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`rounds must be a positive integer, not ${rounds}`);
  if (options.warmup ?? true) {
    await ours();
    await baseline();
  }
  const oursSamples: number[] = [];
  const baselineSamples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      baselineSamples.push(await baseline());
      oursSamples.push(await ours());
    } else {
      oursSamples.push(await ours());
      baselineSamples.push(await baseline());
    }
  }
  return { ours: median(oursSamples), baseline: median(baselineSamples), oursSamples, baselineSamples };
}

/**
 * Least-squares line y = intercept + slope·x through the points: a per-unit cost and a fixed cost, and
 * the slope's standard error (0 through two points, which any line fits).
 */
export function fitLine(points: Array<{ x: number; y: number }>): { slope: number; intercept: number; slopeError: number } {
  const xs = new Set(points.map((p) => p.x));
  if (xs.size < 2) throw new RangeError('a line needs points at two different x at least');
  const n = points.length;
  const mx = points.reduce((sum, p) => sum + p.x, 0) / n;
  const my = points.reduce((sum, p) => sum + p.y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const p of points) {
    sxy += (p.x - mx) * (p.y - my);
    sxx += (p.x - mx) ** 2;
  }
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  const residuals = points.reduce((sum, p) => sum + (p.y - intercept - slope * p.x) ** 2, 0);
  return { slope, intercept, slopeError: n > 2 ? Math.sqrt(residuals / (n - 2) / sxx) : 0 };
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

/** Median rates of keyward's and the baseline's batch, in alternating rounds (either side first in turn) after a warm-up. */
export function compareRates(ours: () => number, baseline: () => number, rounds = 7, ms = 250): { ours: number; baseline: number } {
  rate(ours, 100);
  rate(baseline, 100);
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      b.push(rate(baseline, ms));
      a.push(rate(ours, ms));
    } else {
      a.push(rate(ours, ms));
      b.push(rate(baseline, ms));
    }
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
    if (i % 2 === 0) {
      b.push(await measure(baseline));
      a.push(await measure(ours));
    } else {
      a.push(await measure(ours));
      b.push(await measure(baseline));
    }
  }
  return { ours: median(a), baseline: median(b) };
}

export function printTable(report: BenchReport): void {
  const rows = report.results.map((r) => [r.name, `${format(r.value)} ${r.unit}`, `${format(r.baseline)} ${r.unit}`, r.ratio.toFixed(3)]);
  const header = ['measure', 'keyward', 'raw baseline', 'ratio (higher is better)'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  const definitions = (report.definitions ?? []).map((d) => `  baseline: ${d}\n`).join('');
  process.stdout.write(`\n${report.bench}\n${definitions}${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${rows.map(line).join('\n')}\n`);
}

function format(value: number): string {
  if (value >= 100) return Math.round(value).toLocaleString('en-US');
  return value.toPrecision(3);
}

/** Runs a bench and prints it: the table, then the JSON line; a failure sets exit code 1. */
export async function printBench(name: string, run: () => Promise<BenchReport>): Promise<void> {
  try {
    const report = await run();
    printTable(report);
    process.stdout.write(`${toJson(report)}\n`);
  } catch (error) {
    process.stderr.write(`bench ${name} failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  }
}
