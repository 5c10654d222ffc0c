import { join } from 'node:path';
import { createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../../server/config';
import { KeywardRuntime } from '../../../server/runtime';
import { createLogger } from '../../../server/web/logger';
import { OperatorConsole } from '../../../server/web/operator-console';
import { listRoutes, RouteEntry } from '../../../server/web/route-list';
import { prepareWebServer } from '../../../server/web/web-server';

/** Sample values for route parameters; a new parameter fails here until the tests know it. */
const PARAMETERS: Record<string, string> = { hsmType: 'softhsm', id: '1' };

export function concrete(path: string): string {
  return path.replace(/:(\w+)/g, (_, name: string) => {
    const value = PARAMETERS[name];
    if (value === undefined) throw new Error(`the route ${path} has a parameter :${name} the web tests do not know`);
    return value;
  });
}

/**
 * The application's own route table, read from the router of a real application built in this
 * process on a booted home (the same builder `keyward start` uses). Also answers /readyz from that
 * application before and after its first lifecycle reading, as a server does around BOOT.
 */
export async function inspectApplication(home: string): Promise<{ routes: RouteEntry[]; readyzBeforeBoot: number; readyzAfterBoot: number }> {
  const runtime = new KeywardRuntime(loadConfig({ ...process.env, KEYWARD_HOME: home, SOFTHSM2_CONF: join(home, 'softhsm2.conf'), DATABASE_URL: '' }));
  let booted = false;
  try {
    const web = await prepareWebServer(runtime, { revisionBeforeBoot: 0, booted: () => booted, logger: createLogger('silent'), console: new OperatorConsole(() => undefined) });
    const server = createServer(web.deps.tls.options, web.app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const readyz = async () => await fetchStatus(port, '/readyz');
    const readyzBeforeBoot = await readyz();
    await web.deps.watcher.poll();
    booted = true;
    const readyzAfterBoot = await readyz();
    await new Promise((resolve) => server.close(resolve));
    return { routes: listRoutes(web.app), readyzBeforeBoot, readyzAfterBoot };
  } finally {
    await runtime.close();
  }
}

async function fetchStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}
