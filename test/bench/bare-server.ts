import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';

/**
 * The baseline of `npm run bench -- http`: a bare Express app over the same HTTPS setup (keyward's
 * own key and certificate, TLSv1.2 minimum), one handler per measured path returning a body of the
 * same size as keyward's. Started as a child process, like the keyward server it is compared with.
 */
const env = process.env;
const body = (bytes: number) => 'x'.repeat(bytes);
const statusBody = body(Number(env.BARE_STATUS_BYTES ?? 2000));
const readyzBody = body(Number(env.BARE_READYZ_BYTES ?? 30));

const app = express();
app.disable('x-powered-by');
app.get('/status', (_req, res) => {
  res.type('html').send(statusBody);
});
app.get('/readyz', (_req, res) => {
  res.type('text/plain').send(readyzBody);
});

const server = createServer({ key: readFileSync(env.BARE_KEY!), cert: readFileSync(env.BARE_CERT!), minVersion: 'TLSv1.2' }, app);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`bare serving https://127.0.0.1:${(server.address() as AddressInfo).port}/\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
