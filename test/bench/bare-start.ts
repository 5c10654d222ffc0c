import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * The baseline of `npm run bench -- startup`: node loading the node_modules files `keyward start`
 * loaded (recorded in BARE_MODULES, in load order), then a bare HTTPS handler over keyward's key and
 * certificate (TLSv1.2 minimum) answering /readyz with keyward's body.
 */
const env = process.env;
for (const file of JSON.parse(readFileSync(env.BARE_MODULES!, 'utf8')) as string[]) require(file);
const body = env.BARE_READYZ_BODY ?? 'ready: operational\n';
const server = createServer({ key: readFileSync(env.BARE_KEY!), cert: readFileSync(env.BARE_CERT!), minVersion: 'TLSv1.2' }, (req, res) => {
  if (req.url !== '/readyz') {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(body);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`bare serving https://127.0.0.1:${(server.address() as AddressInfo).port}/\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
