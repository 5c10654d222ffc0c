import { BenchReport, printBench } from './measure';

/**
 * `npm run bench -- NAME`: a readable table, then, as the last line, one JSON object
 * {"bench": NAME, "results": [{name, value, unit, baseline, ratio}]}.
 */
const BENCHES: Record<string, () => Promise<BenchReport>> = {
  crypto: async () => (await import('./crypto.js')).run(),
  restore: async () => (await import('./restore.js')).run(),
  http: async () => (await import('./http.js')).run(),
  events: async () => (await import('./events.js')).run(),
  startup: async () => (await import('./startup.js')).run(),
  boot: async () => (await import('./boot.js')).run(),
  rotation: async () => (await import('./rotation.js')).run(),
  replicas: async () => (await import('./replicas.js')).run(),
};

const name = process.argv[2];
if (!name || !BENCHES[name]) {
  process.stderr.write(`usage: npm run bench -- ${Object.keys(BENCHES).join('|')}\n`);
  process.exitCode = 2;
} else {
  void printBench(name, BENCHES[name]);
}
