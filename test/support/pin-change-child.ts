/**
 * A keyward process changing the token PIN, to be killed at a checkpoint: it runs the compiled
 * changeTokenPin (dist/), and at the checkpoint named writes the marker file and waits for its end.
 *
 *   node dist/test/support/pin-change-child.js CONFIG_JSON NEW_PIN_FILE CHECKPOINT MARKER_FILE
 *
 * CONFIG_JSON is the token's TokenConfig (paths and labels; its PIN source is a file). The new PIN is
 * read from a file: a PIN never travels in a process's arguments or environment.
 */
import { writeFileSync } from 'node:fs';
import { changeTokenPin } from '../../hsm/pin-change';
import { readPin } from '../../hsm/pin-source';
import { Pkcs11Token, TokenConfig } from '../../hsm/pkcs11-token';

async function main(): Promise<void> {
  const [configJson, newPinFile, pauseAt, marker] = process.argv.slice(2);
  if (!configJson || !newPinFile || !pauseAt || !marker) throw new Error('expected: CONFIG_JSON NEW_PIN_FILE CHECKPOINT MARKER_FILE');
  const config = JSON.parse(configJson) as TokenConfig;
  await changeTokenPin({
    token: new Pkcs11Token(config),
    pinSource: config.pin,
    newPin: readPin({ file: newPinFile }),
    checkpoint: async (point) => {
      if (point !== pauseAt) return;
      writeFileSync(marker, point);
      await new Promise(() => setInterval(() => undefined, 1000));
    },
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`pin-change-child: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
