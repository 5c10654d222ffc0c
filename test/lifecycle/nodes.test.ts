import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import knex, { Knex } from 'knex';
import { CliHome } from '../support/cli';
import { freshDatabase, TestDatabase } from '../support/databases';
import { completeSoftHsmWizard, wizardSecrets } from '../support/wizard';
import { logIn } from '../web/support/http-wizard';
import { WebClient } from '../web/support/web-client';

jest.setTimeout(170_000);

const HEARTBEAT_SECONDS = 1;

interface NodeRow {
  nodeId: string;
  host: string;
  pid: number;
  version: string;
  lastHeartbeat: string;
  state: 'ready' | 'unready' | 'gone';
  reasons: string[];
  tokenReachable: boolean | null;
  dekLoaded: boolean | null;
  tlsCurrent: boolean | null;
}

interface Node {
  cli: CliHome;
  child: ChildProcess | null;
  port: number;
}

async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T = await read();
  while (!done(last)) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms; last seen ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
    last = await read();
  }
  return last;
}

/**
 * Node health beside the deployment's lifecycle (issue 12, items 1 and 5): three `keyward start` on
 * one PostgreSQL database and one token directory (the "network HSM"), each with a home of its own.
 * Each writes its row; a killed node shows as gone; a node whose PKCS#11 module cannot read its
 * configuration is unready on its own, leaves the lifecycle alone, and comes back by itself.
 */
(process.env.KEYWARD_TEST_SKIP_PG === '1' ? describe.skip : describe)('nodes: several keyward start on one PostgreSQL database', () => {
  let database: TestDatabase;
  let sql: Knex;
  const nodes: Node[] = [];
  const secrets = wizardSecrets();
  let env: NodeJS.ProcessEnv = {};

  const readyz = async (node: Node) => {
    const response = await new WebClient(`https://127.0.0.1:${node.port}`).get('/readyz');
    return { status: response.status, body: response.body };
  };
  const listed = (): NodeRow[] => (nodes[0]!.cli.inspect() as unknown as { nodes: NodeRow[] }).nodes;
  const rowOf = (rows: NodeRow[], node: Node) => rows.find((row) => row.pid === node.child!.pid);

  async function start(node: Node): Promise<void> {
    const { child, port } = await node.cli.startServer();
    node.child = child;
    node.port = port;
  }

  async function stop(node: Node, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = node.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }

  beforeAll(async () => {
    database = await freshDatabase('postgres', 'nodes');
    if (database.config.client !== 'pg') throw new Error('a PostgreSQL database was expected');
    sql = knex({ client: 'pg', connection: database.config.connectionString, pool: { min: 0, max: 1 } });
    env = { DATABASE_URL: database.config.connectionString, KEYWARD_HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS), KEYWARD_WATCH_INTERVAL_MS: '300' };
    for (let n = 1; n <= 3; n++) nodes.push({ cli: new CliHome(`node-${n}`, env), child: null, port: 0 });
    const [first] = nodes;
    // One token directory for all (the network HSM), reached through each node's own configuration file.
    for (const node of nodes) writeFileSync(node.cli.env.SOFTHSM2_CONF!, `directories.tokendir = ${first!.cli.tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    expect(first!.cli.run(['boot']).status).toBe(0);
    completeSoftHsmWizard(first!.cli, secrets);
    // The token PIN is an orchestrator secret: mounted into every node's secrets directory.
    for (const node of nodes.slice(1)) {
      mkdirSync(join(node.cli.home, 'secrets'), { recursive: true, mode: 0o700 });
      copyFileSync(join(first!.cli.home, 'secrets', 'hsm-user-pin'), join(node.cli.home, 'secrets', 'hsm-user-pin'));
    }
    for (const node of nodes) await start(node);
  });

  afterAll(async () => {
    for (const node of nodes) await stop(node);
    await sql?.destroy();
    await database?.drop();
  });

  /** The third node started with its module unable to read its configuration; `restore` gives it back. */
  async function broken(third: Node, restore: () => unknown): Promise<void> {
    const before = nodes[0]!.cli.inspect();
    await start(third);

    // From its first heartbeat on, its own checks say why as well.
    const unready = await until(
      'the third node unready',
      () => readyz(third),
      (r) => r.status === 503 && r.body.includes('cannot reach'),
    );
    expect(unready.body).toBe("not ready: waiting for this node's own probe (another node serves the deployment); this node cannot reach the token; this node does not hold the primary DEK\n");
    const row = await until(
      'the third node listed unready',
      async () => rowOf(listed(), third),
      (r) => r?.state === 'unready',
    );
    expect(row!.tokenReachable).toBe(false);
    expect(row!.reasons[0]).toMatch(/the token cannot be reached from this node \(MODULE_LOAD_FAILED\); node \S+ serves the deployment/);
    // Several heartbeats later: still unready, the others ready, the lifecycle where it was.
    await new Promise((resolve) => setTimeout(resolve, 4 * HEARTBEAT_SECONDS * 1000));
    expect((await readyz(third)).status).toBe(503);
    for (const node of nodes.slice(0, 2)) expect((await readyz(node)).status).toBe(200);
    const during = nodes[0]!.cli.inspect();
    expect({ state: during.state, revision: during.revision }).toEqual({ state: 'operational', revision: before.revision });

    restore();
    expect(
      await until(
        'the third node ready again',
        () => readyz(third),
        (r) => r.status === 200,
      ),
    ).toEqual({ status: 200, body: 'ready: operational\n' });
    const after = nodes[0]!.cli.inspect();
    expect(after.state).toBe('operational');
    // Its own BOOT, sent late: not one state outside operation on the way.
    const visited = after.history.filter((h) => (h.revision as number) > before.revision).map((h) => h.toState as string);
    expect(visited.filter((state) => !state.startsWith('startup.') && state !== 'operational')).toEqual([]);
    await until(
      'all three ready',
      async () => listed(),
      (list) => list.length === 3 && list.every((r) => r.state === 'ready'),
    );
  }

  it('each node writes its row; inspect --json, the status page and /metrics list them all ready', async () => {
    for (const node of nodes)
      expect(
        await until(
          '/readyz',
          () => readyz(node),
          (r) => r.status === 200,
        ),
      ).toEqual({ status: 200, body: 'ready: operational\n' });
    const rows = await until(
      'three ready nodes',
      async () => listed(),
      (list) => list.length === 3 && list.every((row) => row.state === 'ready'),
    );
    for (const node of nodes) {
      expect(rowOf(rows, node)).toMatchObject({ version: expect.any(String), reasons: [], tokenReachable: true, dekLoaded: true, tlsCurrent: true });
    }
    expect(new Set(rows.map((row) => row.nodeId)).size).toBe(3);

    const admin = new WebClient(`https://127.0.0.1:${nodes[1]!.port}`);
    await logIn(admin, 'admin', secrets.admin);
    const page = await admin.get('/status');
    expect(page.status).toBe(200);
    for (const node of nodes) expect(page.body).toMatch(new RegExp(`<tr data-node="[^"]*:${node.child!.pid}:[^"]*" data-state="ready">`));
    expect(page.body).toMatch(/\(this node\)/);

    const metrics = (await new WebClient(`https://127.0.0.1:${nodes[0]!.port}`).get('/metrics')).body;
    expect(metrics).toMatch(/^keyward_node_ready 1$/m);
    expect(metrics).toMatch(/^keyward_nodes\{state="ready"\} 3$/m);
    expect(metrics).toMatch(/^keyward_nodes\{state="gone"\} 0$/m);
    const beat = Number(/^keyward_node_heartbeat_timestamp_seconds (\S+)$/m.exec(metrics)?.[1]);
    expect(Math.abs(Date.now() / 1000 - beat)).toBeLessThan(5);
  });

  it('a node whose module cannot read its configuration is unready on its own; the lifecycle stays; it recovers by itself', async () => {
    const third = nodes[2]!;
    // Root reads any file whatever its mode: the configuration is moved away instead, which SoftHSM2
    // answers at C_Initialize as an unreadable one (CKR_GENERAL_ERROR): this node's module fails.
    const conf = third.cli.env.SOFTHSM2_CONF!;
    await stop(third);
    expect(listed().map((row) => row.pid)).not.toContain(third.child!.pid);
    renameSync(conf, `${conf}.away`);
    const restore = () => existsSync(`${conf}.away`) && renameSync(`${conf}.away`, conf);
    try {
      await broken(third, restore);
    } catch (error) {
      restore();
      throw error;
    }
  });

  it('a running node that loses its module turns unready at its next heartbeat, sends no event, and recovers by itself', async () => {
    const second = nodes[1]!;
    const conf = second.cli.env.SOFTHSM2_CONF!;
    const before = nodes[0]!.cli.inspect();
    renameSync(conf, `${conf}.away`);
    try {
      const unready = await until(
        'the second node unready',
        () => readyz(second),
        (r) => r.status === 503,
      );
      expect(unready.body).toBe('not ready: this node cannot reach the token\n');
      expect(
        rowOf(
          await until(
            'its row unready',
            async () => listed(),
            (list) => rowOf(list, second)?.state === 'unready',
          ),
          second,
        )!.reasons,
      ).toEqual([expect.stringMatching(/^this node cannot reach the token \(\w+\)$/)]);
      for (const node of [nodes[0]!, nodes[2]!]) expect((await readyz(node)).status).toBe(200);
    } finally {
      renameSync(`${conf}.away`, conf);
    }
    expect(
      await until(
        'the second node ready again',
        () => readyz(second),
        (r) => r.status === 200,
      ),
    ).toEqual({ status: 200, body: 'ready: operational\n' });
    const after = nodes[0]!.cli.inspect();
    expect({ state: after.state, revision: after.revision }).toEqual({ state: 'operational', revision: before.revision });
  });

  it('a running node turns unready when the database records another keyward version; an older node is refused at start', async () => {
    const version = await sql<{ id: number; version: string }>('app_version').where({ id: 1 }).first('version');
    if (!version) throw new Error('the database records no keyward version');
    // What a newer keyward's BOOT does to the database (VERSION_UPGRADE): the nodes beside it fall outside their window.
    await sql('app_version').where({ id: 1 }).update({ version: '99.0.0' });
    try {
      const rows = await until(
        'every node unready',
        async () => listed(),
        (list) => list.length === 3 && list.every((r) => r.state === 'unready'),
      );
      for (const row of rows) expect(row.reasons).toContain(`the database was upgraded to keyward 99.0.0; this node runs keyward ${version.version}: replace it with keyward 99.0.0`);
      expect(await readyz(nodes[0]!)).toEqual({ status: 503, body: "not ready: the database's keyward version is outside this node's compatibility window\n" });
      // A node of this (older) keyward starting now is refused, and says why.
      const late = new CliHome('node-late', env);
      mkdirSync(join(late.home, 'secrets'), { recursive: true, mode: 0o700 });
      copyFileSync(join(nodes[0]!.cli.home, 'secrets', 'hsm-user-pin'), join(late.home, 'secrets', 'hsm-user-pin'));
      writeFileSync(late.env.SOFTHSM2_CONF!, `directories.tokendir = ${nodes[0]!.cli.tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
      const refused = late.run(['start'], { env: { KEYWARD_PORT: '0' } });
      expect(refused.status).toBe(6);
      expect(refused.stderr).toMatch(/start-up refused: .*99\.0\.0/);
    } finally {
      await sql('app_version').where({ id: 1 }).update({ version: version.version });
    }
    await until(
      'every node ready again',
      async () => listed(),
      (list) => list.length === 3 && list.every((r) => r.state === 'ready'),
    );
  });

  it('a killed node shows as gone after three of its intervals', async () => {
    const second = nodes[1]!;
    const pid = second.child!.pid;
    await stop(second, 'SIGKILL');
    const killedAt = Date.now();
    const rows = await until(
      'the killed node gone',
      async () => listed(),
      (list) => list.find((r) => r.pid === pid)?.state === 'gone',
    );
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(3 * HEARTBEAT_SECONDS * 1000 - 1000);
    expect(rows.filter((r) => r.state === 'ready')).toHaveLength(2);
    const metrics = (await new WebClient(`https://127.0.0.1:${nodes[0]!.port}`).get('/metrics')).body;
    expect(metrics).toMatch(/^keyward_nodes\{state="gone"\} 1$/m);
    expect(metrics).toMatch(/^keyward_nodes\{state="ready"\} 2$/m);
    const admin = new WebClient(`https://127.0.0.1:${nodes[0]!.port}`);
    await logIn(admin, 'admin', secrets.admin);
    expect((await admin.get('/status')).body).toMatch(new RegExp(`<tr data-node="[^"]*:${pid}:[^"]*" data-state="gone">`));
  });
});
