import { Agent, request } from 'node:https';
import { median } from './measure';

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  p50: number;
  p99: number;
  rps: number;
  /** Every successful request's latency (ms), sorted. */
  latencies: number[];
}

/** Several rounds against one target: p50, p99 and throughput each the median over the rounds; counts summed. */
export function medianOfRounds(rounds: LoadResult[]): LoadResult {
  return {
    requests: rounds.reduce((sum, round) => sum + round.requests, 0),
    errors: rounds.reduce((sum, round) => sum + round.errors, 0),
    seconds: rounds.reduce((sum, round) => sum + round.seconds, 0),
    p50: median(rounds.map((round) => round.p50)),
    p99: median(rounds.map((round) => round.p99)),
    rps: median(rounds.map((round) => round.rps)),
    latencies: [],
  };
}

/** One request's latency in milliseconds; a status other than 200 counts as an error (-1). */
function once(agent: Agent, url: URL, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, agent, headers, rejectUnauthorized: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? Number(process.hrtime.bigint() - started) / 1e6 : -1));
    });
    req.on('error', reject);
    req.end();
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * A loopback load generator in plain Node: `connections` keep-alive HTTPS connections, each sending
 * its next request as soon as the previous answer is in, for `durationMs`.
 */
export async function generateLoad(url: URL, options: { connections: number; durationMs: number; headers?: Record<string, string> }): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections, rejectUnauthorized: false });
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + options.durationMs;
  const worker = async () => {
    while (performance.now() < deadline) {
      try {
        const ms = await once(agent, url, options.headers ?? {});
        if (ms < 0) errors += 1;
        else latencies.push(ms);
      } catch {
        errors += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: options.connections }, worker));
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { requests: latencies.length, errors, seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), rps: latencies.length / seconds, latencies };
}
