import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import express from 'express';

/**
 * The baseline of `npm run bench -- http`: a bare Express app over the same HTTPS setup (keyward's
 * own key and certificate, TLSv1.2 minimum, keyward's cipher list from BARE_CIPHERS). /status renders, through Express's EJS view engine with
 * the view cache on (as keyward), a template that yields keyward's status page byte for byte
 * (BARE_DIR/status.ejs with BARE_DIR/status-locals.json); /readyz sends keyward's body. Each sets the
 * response headers keyward sent on that path (BARE_DIR/headers.json). Started as a child process,
 * like the keyward server it is compared with.
 */
const dir = process.env.BARE_DIR!;
const headers = JSON.parse(readFileSync(join(dir, 'headers.json'), 'utf8')) as Record<'status' | 'readyz', Record<string, string | string[]>>;
const locals = JSON.parse(readFileSync(join(dir, 'status-locals.json'), 'utf8')) as object;
const readyzBody = readFileSync(join(dir, 'readyz.txt'), 'utf8');

const app = express();
app.disable('x-powered-by');
app.set('views', dir);
app.set('view engine', 'ejs');
app.set('view cache', true);
app.get('/status', (_req, res) => {
  res.set(headers.status);
  res.render('status', locals);
});
app.get('/readyz', (_req, res) => {
  res.set(headers.readyz);
  res.send(readyzBody);
});

const server = createServer({ key: readFileSync(process.env.BARE_KEY!), cert: readFileSync(process.env.BARE_CERT!), minVersion: 'TLSv1.2', ciphers: process.env.BARE_CIPHERS! }, app);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`bare serving https://127.0.0.1:${(server.address() as AddressInfo).port}/\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
