import { createServer, Server } from 'node:https';
import { readTlsFiles } from '../effects/tls';
import { createApp } from './app';
import { EXIT } from './exit-codes';
import type { KeywardRuntime } from './runtime';

/**
 * `keyward start`: BOOT, then HTTPS with the credential the machine chose. A refused start-up
 * (VERSION_DOWNGRADE) serves nothing and exits non-zero; a physical-HSM outage is retried.
 */
export async function serve(runtime: KeywardRuntime): Promise<number> {
  let booted = false;
  const result = await runtime.boot('startup');
  if (result.outcome === 'startup_refused') {
    process.stderr.write(`keyward: start-up refused: ${result.message}\n`);
    await runtime.close();
    return EXIT.STARTUP_REFUSED;
  }
  booted = true;
  process.stdout.write(`keyward: ${result.state}${result.wizardState ? ` (${result.wizardState})` : ''}\n`);
  if (result.message) process.stderr.write(`keyward: ${result.message}\n`);

  const material = await readTlsFiles(runtime.config.tlsDir);
  if (!material) {
    process.stderr.write(`keyward: no TLS credential in ${runtime.config.tlsDir}; the start-up did not produce one\n`);
    await runtime.close();
    return EXIT.STARTUP_FAILED;
  }
  const app = createApp(runtime, { booted: () => booted });
  const server: Server = createServer({ key: material.privateKeyPem, cert: material.certificatePem + (material.chainPem ?? '') }, app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(runtime.config.port, runtime.config.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : runtime.config.port;
  process.stdout.write(`keyward: serving https://${runtime.config.host}:${port}/ (TLS SHA-256 ${material.fingerprintSha256})\n`);

  const retry = setInterval(async () => {
    const { state } = await runtime.engine.inspect({ historyLimit: 0 }).catch(() => ({ state: '' }));
    if (state.startsWith('outage')) await runtime.boot('outage-retry').catch((error: Error) => process.stderr.write(`keyward: retry failed: ${error.message}\n`));
  }, runtime.config.outageRetrySeconds * 1000);
  retry.unref();

  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      process.stdout.write(`keyward: ${signal}, shutting down\n`);
      clearInterval(retry);
      server.close(() => {
        void runtime.close().then(() => resolve(EXIT.OK));
      });
      server.closeAllConnections();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
