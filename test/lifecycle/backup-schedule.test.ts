import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import knex, { Knex } from 'knex';
import { CliHome } from '../support/cli';
import { freshDatabase, TestDatabase } from '../support/databases';
import { testDir } from '../support/run-dir';
import { newSecret, registerSecretSource } from '../support/secrets';
import { completeSoftHsmWizard, wizardSecrets } from '../support/wizard';
import { Browser } from '../web/support/browser';
import { logIn } from '../web/support/http-wizard';
import { logIn as logInPage } from '../web/support/pages';
import { WebClient } from '../web/support/web-client';

jest.setTimeout(240_000);

const KEEP = 2;

interface Node {
  cli: CliHome;
  child: ChildProcess | null;
  port: number;
}

interface RunRow {
  kind: string;
  slot: string;
  status: string;
  archive: string | null;
  node_pid: number;
  rto_seconds: number | null;
  message: string | null;
}

async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await read();
  while (!done(last)) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms; last seen ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    last = await read();
  }
  return last;
}

const metric = (body: string, series: string): number | null => {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : null;
};

/**
 * Scheduled backups and drills (issue 14, item 2) with `keyward start` processes sharing one database
 * and one token directory: a schedule of seconds fires while the test waits, each scheduled time is
 * run by exactly one process, the directory keeps the newest KEEP archives, a drill runs on the
 * newest, and /metrics shows their times and the RTO, from the database (the same after a restart).
 */
function scheduledDeployment(engine: 'postgres' | 'sqlite', options: { nodes: number; drillPassword: 'right' | 'wrong' }) {
  let database: TestDatabase;
  let sql: Knex;
  const nodes: Node[] = [];
  const secrets = wizardSecrets();
  const backupDir = join(testDir(`backup-dir-${engine}`), 'archives');
  const passphrase = `Pp-${newSecret('passphrase')}`;

  const start = async (node: Node) => {
    const { child, port } = await node.cli.startServer();
    node.child = child;
    node.port = port;
  };
  const stop = async (node: Node) => {
    const child = node.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  const runs = async (): Promise<RunRow[]> => (await sql('backup_runs').orderBy('slot')) as RunRow[];
  const metrics = async (node: Node) => (await new WebClient(`https://127.0.0.1:${node.port}`).get('/metrics')).body;

  beforeAll(async () => {
    database = await freshDatabase(engine, `schedule-${engine}`);
    const dbEnv: NodeJS.ProcessEnv = database.config.client === 'pg' ? { DATABASE_URL: database.config.connectionString } : { KEYWARD_SQLITE: database.config.filename };
    sql = knex(
      database.config.client === 'pg'
        ? { client: 'pg', connection: database.config.connectionString, pool: { min: 0, max: 1 } }
        : { client: 'sqlite3', connection: { filename: database.config.filename }, useNullAsDefault: true },
    );
    // Orchestrator secrets, mounted as files: the archive passphrase and (for the drill) the backup password.
    const given = testDir(`schedule-secrets-${engine}`);
    const secretFile = (name: string, value: string) => {
      const path = join(given, name);
      writeFileSync(path, `${value}\n`, { mode: 0o600 });
      registerSecretSource(path);
      return path;
    };
    const env: NodeJS.ProcessEnv = {
      ...dbEnv,
      KEYWARD_HEARTBEAT_SECONDS: '1',
      KEYWARD_WATCH_INTERVAL_MS: '300',
      // Every 6 seconds: croner's sixth field is seconds.
      KEYWARD_BACKUP_SCHEDULE: '*/6 * * * * *',
      KEYWARD_BACKUP_DIR: backupDir,
      KEYWARD_BACKUP_KEEP: String(KEEP),
      KEYWARD_BACKUP_PASSPHRASE_FILE: secretFile('passphrase', passphrase),
      KEYWARD_DRILL_PASSWORD_FILE: secretFile('drill-password', options.drillPassword === 'right' ? secrets.backup : `Bk-${newSecret('wrong')}`),
      KEYWARD_BACKUP_MAX_AGE: '1h',
      KEYWARD_DRILL_MAX_AGE: '1h',
    };
    for (let n = 1; n <= options.nodes; n++) nodes.push({ cli: new CliHome(`schedule-${engine}-${n}`, env), child: null, port: 0 });
    const [first] = nodes;
    // One token directory for all (a network HSM), reached through each node's own configuration file.
    for (const node of nodes.slice(1))
      writeFileSync(node.cli.env.SOFTHSM2_CONF!, `directories.tokendir = ${first!.cli.tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    expect(first!.cli.run(['boot']).status).toBe(0);
    completeSoftHsmWizard(first!.cli, secrets);
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

  return { nodes, runs, metrics, start, stop, backupDir, adminPassword: secrets.admin };
}

(process.env.KEYWARD_TEST_SKIP_PG === '1' ? describe.skip : describe)('scheduled backups and drills: two keyward start on one PostgreSQL database', () => {
  const under = scheduledDeployment('postgres', { nodes: 2, drillPassword: 'right' });

  it('runs each scheduled time once across the processes, keeps the newest archives, drills the newest, and /metrics shows it', async () => {
    const { nodes, runs, metrics, backupDir } = under;
    const rows = await until(
      'three scheduled backups and a passed drill',
      runs,
      (all) => all.filter((r) => r.kind === 'backup' && r.status === 'ok').length >= KEEP + 1 && all.some((r) => r.kind === 'drill' && r.status === 'ok'),
    );
    const backups = rows.filter((r) => r.kind === 'backup');
    // One row per scheduled time and kind (the database's unique claim), each time on a 6-second boundary.
    expect(new Set(backups.map((r) => r.slot)).size).toBe(backups.length);
    for (const row of backups) expect(new Date(row.slot).getUTCSeconds() % 6).toBe(0);
    expect(backups.filter((r) => r.status === 'failed')).toEqual([]);
    // No process made an archive for a time it did not claim: every "made" in the logs is a row.
    const made = nodes.flatMap((node) => readFileSync(node.cli.log, 'utf8').match(/scheduled backup made/g) ?? []);
    expect(made.length).toBe(backups.filter((r) => r.status === 'ok').length);
    // Retention: the newest KEEP archives, by name (the names are the scheduled times).
    const names = readdirSync(backupDir).sort();
    const ok = backups.filter((r) => r.status === 'ok').map((r) => r.archive!);
    const expected = ok.slice(-KEEP);
    expect(names.slice(-KEEP)).toEqual(expected);
    expect(names.length).toBeLessThanOrEqual(KEEP + 1); // a backup may be writing its archive right now

    const drill = rows.filter((r) => r.kind === 'drill' && r.status === 'ok').at(-1)!;
    expect(drill.rto_seconds).toBeGreaterThan(0);
    expect(drill.archive).toBe(backups.find((r) => r.slot === drill.slot)!.archive);
    for (const node of nodes) {
      const body = await metrics(node);
      const backupAt = metric(body, 'keyward_backup_last_success_timestamp_seconds')!;
      const drillAt = metric(body, 'keyward_drill_last_success_timestamp_seconds')!;
      expect(Date.now() / 1000 - backupAt).toBeLessThan(120);
      expect(Date.now() / 1000 - drillAt).toBeLessThan(120);
      expect(metric(body, 'keyward_drill_rto_seconds')).toBeGreaterThan(0);
      expect(metric(body, 'keyward_backup_stale{kind="backup"}')).toBe(0);
    }
  });

  it('keeps the history across a restart: the restarted process reports the same last success at once', async () => {
    const { nodes, metrics, start, stop, runs } = under;
    const [first] = nodes;
    await stop(first!);
    await start(first!);
    const body = await metrics(first!);
    const last = (await runs()).filter((r) => r.kind === 'backup' && r.status === 'ok').at(-1)!;
    const shown = metric(body, 'keyward_backup_last_success_timestamp_seconds')!;
    // The newest success in the database (or one finished since): never nothing, as a fresh process would know.
    expect(shown).toBeGreaterThan(0);
    expect(shown * 1000).toBeGreaterThanOrEqual(Date.parse(last.slot));
  });
});

describe('scheduled backups and drills on SQLite: a failing drill shows on the status page and in /metrics', () => {
  const under = scheduledDeployment('sqlite', { nodes: 2, drillPassword: 'wrong' });

  it('two processes on one SQLite file run each time once; the drill with a wrong backup password fails, and says so', async () => {
    const { nodes, runs, metrics, adminPassword } = under;
    const rows = await until(
      'a scheduled backup and a failed drill',
      runs,
      (all) => all.some((r) => r.kind === 'backup' && r.status === 'ok') && all.some((r) => r.kind === 'drill' && r.status === 'failed'),
    );
    const backups = rows.filter((r) => r.kind === 'backup');
    expect(new Set(backups.map((r) => r.slot)).size).toBe(backups.length);
    const made = nodes.flatMap((node) => readFileSync(node.cli.log, 'utf8').match(/scheduled backup made/g) ?? []);
    expect(made.length).toBe(backups.filter((r) => r.status === 'ok').length);
    const failed = rows.find((r) => r.kind === 'drill' && r.status === 'failed')!;
    expect(failed.message).toMatch(/backup password/);

    const body = await metrics(nodes[1]!);
    expect(metric(body, 'keyward_backup_last_run_failed{kind="drill"}')).toBe(1);
    expect(metric(body, 'keyward_backup_stale{kind="drill"}')).toBe(1);
    expect(metric(body, 'keyward_drill_last_success_timestamp_seconds')).toBe(0);
    expect(metric(body, 'keyward_backup_last_success_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 120);

    const admin = new WebClient(`https://127.0.0.1:${nodes[0]!.port}`);
    await logIn(admin, 'admin', adminPassword);
    const status = (await admin.get('/status')).body;
    const problems = [...status.matchAll(/<p class="warning backup-problem" data-kind="(\w+)">([\s\S]*?)<\/p>/g)].map((m) => [m[1], m[2]!.replace(/<[^>]+>/g, '').replace(/&#39;/g, "'")]);
    expect(problems).toEqual([
      ['drill', expect.stringMatching(/^Restore drills: The last restore drill failed \(.+\): .*backup password/)],
      ['drill', expect.stringMatching(/^Restore drills: There has been no successful restore drill yet, and one is expected at least every 60 minutes\./)],
    ]);
    expect(status).toMatch(/id="last-backup"><span class="ok">succeeded<\/span>/);

    // The failure as an operator sees it, on the Backups page and the status page, at both widths.
    const browser = await Browser.launch('backup-schedule');
    try {
      await browser.page.goto(`https://127.0.0.1:${nodes[0]!.port}/backups`);
      await logInPage(browser, 'admin', adminPassword);
      expect(await browser.page.$$eval('.backup-problem', (items: unknown[]) => items.length)).toBe(2);
      expect(await browser.page.textContent('#schedule-pattern')).toBe('*/6 * * * * *');
      expect(await browser.shot('backups-schedule-failing')).toEqual([]);
      await browser.page.goto(`https://127.0.0.1:${nodes[0]!.port}/status`);
      expect(await browser.shot('status-drill-failing')).toEqual([]);
    } finally {
      await browser.close();
    }
  });

  it('catches up the latest time missed while every process was stopped, once, and not the ones before it', async () => {
    const { nodes, runs, start, stop } = under;
    for (const node of nodes) await stop(node);
    const lastBefore = (await runs())
      .filter((r) => r.kind === 'backup')
      .map((r) => r.slot)
      .sort()
      .pop()!;
    // At least two times of the six-second pattern pass while nothing runs.
    await new Promise((resolve) => setTimeout(resolve, 13_000));
    await start(nodes[0]!);
    const line = await until(
      'the catch-up at start',
      async () =>
        readFileSync(nodes[0]!.cli.log, 'utf8')
          .split('\n')
          .find((l) => l.includes('a scheduled backup time passed while no keyward process ran')),
      (found) => found !== undefined,
      30_000,
    );
    const slot = (JSON.parse(line!) as { slot: string }).slot;
    const rows = await until('the caught-up backup', runs, (all) => all.some((r) => r.kind === 'backup' && r.slot === slot && r.status !== 'running'));
    expect(rows.find((r) => r.kind === 'backup' && r.slot === slot)!.status).toBe('ok');
    // The latest missed time only: an earlier one passed too, and was not run.
    expect(Date.parse(slot) - Date.parse(lastBefore)).toBeGreaterThanOrEqual(12_000);
    expect(rows.filter((r) => r.kind === 'backup' && r.slot > lastBefore && r.slot < slot)).toEqual([]);
  });
});
