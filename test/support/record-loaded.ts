import { writeFileSync } from 'node:fs';

/** Preloaded (NODE_OPTIONS=--require) into a CLI process by tests: at exit, writes every file it loaded. */
const out = process.env.KEYWARD_TEST_LOADED_OUT;
if (out) process.once('exit', () => writeFileSync(out, `${JSON.stringify(Object.keys(require.cache))}\n`));
