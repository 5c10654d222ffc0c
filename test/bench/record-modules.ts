import { writeFileSync } from 'node:fs';

/**
 * Preloaded (node -r) into one untimed `keyward start` by the startup bench: at exit, writes the files
 * it loaded from node_modules, in load order, so the bare baseline loads exactly those.
 */
const out = process.env.BENCH_MODULES_OUT;
if (out) {
  process.once('exit', () => {
    const loaded = Object.keys(require.cache).filter((file) => file.includes('/node_modules/'));
    writeFileSync(out, `${JSON.stringify(loaded)}\n`);
  });
}
