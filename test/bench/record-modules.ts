import { writeFileSync } from 'node:fs';

/**
 * Preloaded (node -r) into one untimed `keyward start` by the startup bench: at exit, writes the files
 * it loaded from node_modules, in load order, so the bare baseline loads exactly those.
 */
const out = process.env.BENCH_MODULES_OUT;
if (out) {
  const write = () => writeFileSync(out, `${JSON.stringify(Object.keys(require.cache).filter((file) => file.includes('/node_modules/')))}\n`);
  process.once('exit', write);
  // keyward installs its SIGTERM handler once its first lifecycle reading is done, which may be after
  // its first answer: a SIGTERM before that would end the process without an 'exit' event.
  process.on('SIGTERM', () => {
    if (process.listenerCount('SIGTERM') > 1) return;
    write();
    process.exit(143);
  });
}
