import type { ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import knex from 'knex';
import { EXIT } from '../../server/exit-codes';
import { CliHome } from '../support/cli';
import { engines, freshDatabase } from '../support/databases';
import { testDir } from '../support/run-dir';
import { newSecret } from '../support/secrets';
import { completeSoftHsmWizard, wizardSecrets, withStore } from '../support/wizard';
import { rawRows } from '../../db/database';

/**
 * Nothing lost at the edges of a home (issue 8, item 11), each found by killing or corrupting on
 * purpose: a restore killed at each rename, a database that vanished beside an install, two servers
 * on one home, a corrupt database, what killed backups leave, and a store that went back in time.
 * Every case runs the real CLI in real processes on a real SoftHSM install.
 */
jest.setTimeout(600_000);

const secrets = wizardSecrets();
const passphrase = `Pp-${newSecret('passphrase')}`;
const OLD = ['after-archive', 'in-archive'];
const RESTORED = ['in-archive'];

let source: CliHome;
let archive: string;
const servers: ChildProcess[] = [];

// A failed expectation must not leave a server behind.
afterEach(() => {
  for (const child of servers.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** A copy of the source install in a home of its own: its database, token, PIN file and TLS directory. */
function copyOfSource(name: string): CliHome {
  const cli = new CliHome(name);
  const skip = ['cli.log', 'softhsm2.conf', 'given', 'keyward.lock'].map((entry) => join(source.home, entry));
  cpSync(source.home, cli.home, { recursive: true, verbatimSymlinks: true, filter: (src) => !skip.includes(src) });
  return cli;
}

async function deviceNames(cli: CliHome): Promise<string[]> {
  const db = knex({ client: 'sqlite3', connection: { filename: join(cli.home, 'keyward.sqlite') }, useNullAsDefault: true });
  try {
    return ((await db('devices').select('name').orderBy('name')) as Array<{ name: string }>).map((row) => row.name);
  } finally {
    await db.destroy();
  }
}

type Started = { serving: true; child: ChildProcess; output: () => string } | { serving: false; code: number | null; output: string };

/** `keyward start`: serving (then the caller stops it), or the exit it came to; a hang fails the test. */
function start(cli: CliHome, timeoutMs = 60_000): Promise<Started> {
  const child = cli.spawn(['start'], { KEYWARD_PORT: '0', KEYWARD_HOST: '127.0.0.1' });
  servers.push(child);
  child.stdin!.end();
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`keyward start neither served nor exited within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    // Serving, and past its first reading of the lifecycle (after which it handles SIGTERM).
    const poll = setInterval(() => {
      if (!/keyward: serving https:/.test(output) || !/"msg":"lifecycle state"/.test(output)) return;
      clearInterval(poll);
      clearTimeout(timer);
      setTimeout(() => resolve({ serving: true, child, output: () => output }), 300);
    }, 50);
    child.once('exit', (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve({ serving: false, code, output });
    });
  });
}

async function stop(started: Started): Promise<number | null> {
  if (!started.serving) throw new Error(`the server did not start:\n${started.output}`);
  const exited = new Promise<number | null>((resolve) => started.child.once('exit', (code) => resolve(code)));
  started.child.kill('SIGTERM');
  return exited;
}

function leftovers(cli: CliHome): string[] {
  return readdirSync(cli.home).filter((name) => /^\.backup-|\.partial$|^\.restore-|^restore-in-progress/.test(name));
}

beforeAll(async () => {
  source = new CliHome('edges-source');
  expect(source.run(['boot']).status).toBe(0);
  completeSoftHsmWizard(source, secrets);
  await withStore(source, (store) => store.devices.create({ name: 'in-archive', estPassword: newSecret('est') }));
  archive = join(testDir('edges-archive'), 'install.kwbak');
  const backup = source.run(['backup', '--output', archive, '--passphrase-file', source.secretFile(passphrase)]);
  expect({ status: backup.status, stderr: backup.stderr }).toEqual({ status: 0, stderr: '' });
  // The store moves on after the backup: the archive is older than the home it will be restored into.
  await withStore(source, (store) => store.devices.create({ name: 'after-archive', estPassword: newSecret('est') }));
  for (let i = 0; i < 3; i++) expect(source.run(['boot']).status).toBe(0);
});

describe('a restore killed at each step of its swap is finished or undone by the next start', () => {
  const CASES: Array<[string, string[], 'undone' | 'finished' | null]> = [
    ['restore:prepared', OLD, null], // before the journal: nothing moved, only the staging copy to remove
    ['restore:journalled', OLD, 'undone'],
    ['restore:database-quarantined', RESTORED, 'finished'], // between the two renames
    ['restore:database-swapped', RESTORED, 'finished'],
    ['restore:tls-quarantined', RESTORED, 'finished'],
    ['restore:tls-swapped', RESTORED, 'finished'],
  ];

  it.each(CASES)('killed at %s', async (checkpoint, expected, outcome) => {
    const cli = copyOfSource(`edges-restore-${checkpoint.replace(':', '-')}`);
    await cli.killAt(checkpoint, ['restore', '--input', archive, '--passphrase-file', cli.secretFile(passphrase)]);
    if (checkpoint === 'restore:database-quarantined') {
      // The reported situation: the old store in quarantine, the restored one not yet in place.
      expect(existsSync(join(cli.home, 'keyward.sqlite'))).toBe(false);
    }
    expect(leftovers(cli).length).toBeGreaterThan(0);

    const started = await start(cli);
    const output = started.serving ? started.output() : started.output;
    expect(await stop(started)).toBe(0);
    if (outcome === 'finished') expect(output).toMatch(/an interrupted restore of .* was finished: the restored store is in place/);
    if (outcome === 'undone') expect(output).toMatch(/an interrupted restore of .* was undone/);

    // The old store or the restored one, never an empty one; the high-water mark follows a finished restore.
    expect(await deviceNames(cli)).toEqual(expected);
    expect(cli.inspect().state).toBe('operational');
    expect(existsSync(join(cli.home, 'tls', 'server.crt'))).toBe(true);
    expect(leftovers(cli)).toEqual([]);
    if (expected === RESTORED) {
      const [stamp] = readdirSync(join(cli.home, 'quarantine'));
      expect(readdirSync(join(cli.home, 'quarantine', stamp!))).toEqual(expect.arrayContaining(['keyward.sqlite', 'tls', 'README.txt']));
    }
    expect(cli.run(['audit', 'verify']).status).toBe(0);
  });
});

(engines().includes('postgres') ? it : it.skip)('PostgreSQL: a restore killed after its journal is undone, one killed after the schema swap is finished', async () => {
  const database = await freshDatabase('postgres', 'edges-restore');
  try {
    const cli = new CliHome('edges-restore-pg', { DATABASE_URL: (database.config as { connectionString: string }).connectionString });
    // The source's token and PIN file: the restored store's DEK unwraps here, as on the same host.
    for (const dir of ['tokens', 'secrets']) cpSync(join(source.home, dir), join(cli.home, dir), { recursive: true });
    const restore = cli.run(['restore', '--input', archive, '--passphrase-file', cli.secretFile(passphrase)]);
    expect(restore.status).toBe(0);
    await withStore(cli, (store) => store.devices.create({ name: 'only-here', estPassword: newSecret('est') }));
    const names = () => withStore(cli, async (store) => (await store.devices.list()).map((device) => device.name).sort());
    const restoreSchemas = async () => {
      const db = knex({ client: 'pg', connection: (database.config as { connectionString: string }).connectionString });
      try {
        return (await rawRows(db, "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'keyward_restore_%'")).length;
      } finally {
        await db.destroy();
      }
    };

    await cli.killAt('restore:journalled', ['restore', '--input', archive, '--passphrase-file', cli.secretFile(passphrase)]);
    expect(await restoreSchemas()).toBe(1);
    const undone = cli.run(['boot']);
    expect(undone.status).toBe(0);
    expect(undone.stderr).toMatch(/was undone/);
    expect(await names()).toEqual(['in-archive', 'only-here']);
    expect(await restoreSchemas()).toBe(0);

    await cli.killAt('restore:database-swapped', ['restore', '--input', archive, '--passphrase-file', cli.secretFile(passphrase)]);
    const finished = cli.run(['boot']);
    expect(finished.status).toBe(0);
    expect(finished.stderr).toMatch(/was finished: the restored store is in place/);
    expect(await names()).toEqual(RESTORED);
    expect(cli.inspect().state).toBe('operational');
    expect(leftovers(cli)).toEqual([]);
  } finally {
    await database.drop();
  }
});

it('a missing or empty database beside a token, PIN file and TLS directory is refused; --fresh-start is the explicit way on', async () => {
  const cli = copyOfSource('edges-vanished');
  for (const suffix of ['', '-wal', '-shm']) rmSync(join(cli.home, `keyward.sqlite${suffix}`), { force: true });

  const boot = cli.run(['boot']);
  expect(boot.status).toBe(EXIT.STORE_MISSING);
  expect(boot.stderr).toMatch(/the database .*keyward\.sqlite is missing, but this home holds a token directory with tokens .*the token PIN file .*a TLS directory with a credential/);
  expect(boot.stderr).toMatch(/--fresh-start/);
  expect(existsSync(join(cli.home, 'keyward.sqlite'))).toBe(false);

  // An empty file (a fresh volume where the old one should be) is the same; `start` says so and exits.
  writeFileSync(join(cli.home, 'keyward.sqlite'), '');
  const started = await start(cli);
  expect(started).toMatchObject({ serving: false, code: EXIT.STORE_MISSING });
  expect(statSync(join(cli.home, 'keyward.sqlite')).size).toBe(0);

  const fresh = cli.run(['boot', '--fresh-start']);
  expect({ status: fresh.status, stderr: fresh.stderr }).toEqual({
    status: 0,
    stderr: expect.stringMatching(/fresh start on purpose \(--fresh-start\): tls and lifecycle-mark\.json moved to .*quarantine/),
  });
  expect(cli.inspect()).toMatchObject({ wizardState: 'WIZARD_SETUP_CRYPTO_STORAGE', scenario: 'DB_NOT_INITIALIZED' });
  const [moved] = readdirSync(join(cli.home, 'quarantine'));
  expect(existsSync(join(cli.home, 'quarantine', moved!, 'tls', 'server.crt'))).toBe(true);
  // Once begun, the new store is an ordinary one: no flag needed any more.
  expect(cli.run(['boot']).status).toBe(0);
});

it('one server per home: a second start and a restore are refused while it runs; a SIGKILL frees the home', async () => {
  const cli = copyOfSource('edges-two-servers');
  const first = await start(cli);
  expect(first.serving).toBe(true);
  const pid = (first as { child: ChildProcess }).child.pid!;

  const second = await start(cli);
  expect(second).toMatchObject({ serving: false, code: EXIT.HOME_IN_USE });
  expect((second as { output: string }).output).toMatch(new RegExp(`another keyward process holds .* \\(pid ${pid}, server, since `));
  const restore = cli.run(['restore', '--input', archive, '--passphrase-file', cli.secretFile(passphrase)]);
  expect(restore.status).toBe(EXIT.HOME_IN_USE);
  expect(await deviceNames(cli)).toEqual(OLD);

  // The pid file is no guard: removing it does not let a second server in.
  rmSync(join(cli.home, 'keyward.pid'), { force: true });
  expect(await start(cli)).toMatchObject({ serving: false, code: EXIT.HOME_IN_USE });

  // The kernel drops the lock with the process: no stale lock after a crash.
  const killed = new Promise((resolve) => (first as { child: ChildProcess }).child.once('exit', resolve));
  (first as { child: ChildProcess }).child.kill('SIGKILL');
  await killed;
  const third = await start(cli);
  expect(third.serving).toBe(true);
  expect(await stop(third)).toBe(0);
});

it('a corrupt database: start exits with STARTUP_FAILED and says why, instead of hanging', async () => {
  const cli = copyOfSource('edges-corrupt');
  const file = join(cli.home, 'keyward.sqlite');
  // The lifecycle table's page overwritten: the file opens, the first read of the lifecycle fails.
  const db = knex({ client: 'sqlite3', connection: { filename: file }, useNullAsDefault: true });
  let page: number;
  let pageSize: number;
  try {
    page = Number((await db<{ type: string; name: string; rootpage: number }>('sqlite_master').where({ type: 'table', name: 'lifecycle' }).first('rootpage'))?.rootpage);
    pageSize = Number((await rawRows<{ page_size: number }>(db, 'PRAGMA page_size'))[0]?.page_size);
  } finally {
    await db.destroy();
  }
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.alloc(pageSize, 0x5a), 0, pageSize, (page - 1) * pageSize);
  closeSync(fd);
  const started = await start(cli, 30_000);
  expect(started).toMatchObject({ serving: false, code: EXIT.STARTUP_FAILED });
  expect((started as { output: string }).output).toMatch(/the database is damaged: SQLITE_(CORRUPT|NOTADB).*Start-up failed; nothing was changed/);
});

it('what a killed backup leaves (database copies, partial archives) is removed by the next backup and by start', async () => {
  const cli = copyOfSource('edges-partials');
  const kill = () => cli.killAt('backup:database-archived', ['backup', '--output', join(cli.home, 'nightly.kwbak'), '--passphrase-file', cli.secretFile(passphrase)]);
  await kill();
  const left = leftovers(cli);
  expect(left).toEqual(expect.arrayContaining([expect.stringMatching(/^\.backup-\d+-/), expect.stringMatching(/^\.nightly\.kwbak\.\d+-[0-9a-f]{12}\.partial$/)]));
  const workDir = left.find((name) => name.startsWith('.backup-'))!;
  expect(readdirSync(join(cli.home, workDir))).toContain('keyward.sqlite');

  const next = cli.run(['backup', '--output', join(cli.home, 'second.kwbak'), '--passphrase-file', cli.secretFile(passphrase)]);
  expect({ status: next.status, stderr: next.stderr }).toEqual({ status: 0, stderr: '' });
  expect(leftovers(cli)).toEqual([]);
  expect(existsSync(join(cli.home, 'nightly.kwbak'))).toBe(false);

  await kill();
  expect(leftovers(cli).length).toBeGreaterThan(0);
  const started = await start(cli);
  expect(await stop(started)).toBe(0);
  expect(leftovers(cli)).toEqual([]);
});

it('a store that went back in time is refused at BOOT against the high-water mark; --accept-older-store accepts it', async () => {
  const cli = copyOfSource('edges-back-in-time');
  const file = join(cli.home, 'keyward.sqlite');
  const older = join(cli.home, 'older.sqlite');
  expect(existsSync(`${file}-wal`) && statSync(`${file}-wal`).size > 0).toBe(false);
  copyFileSync(file, older);
  const before = cli.inspect().revision;
  for (let i = 0; i < 3; i++) expect(cli.run(['boot']).status).toBe(0);
  const newest = cli.inspect().revision;
  expect(newest).toBeGreaterThan(before);
  expect((JSON.parse(readFileSync(join(cli.home, 'lifecycle-mark.json'), 'utf8')) as { deployments: Record<string, { revision: number }> }).deployments.default?.revision).toBe(newest);

  // An older file swapped in: its own log is intact, so only the mark outside it can tell.
  for (const suffix of ['-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
  copyFileSync(older, file);
  expect(cli.run(['audit', 'verify']).status).toBe(0);

  const boot = cli.run(['boot']);
  expect(boot.status).toBe(EXIT.STORE_BEHIND);
  expect(boot.stderr).toMatch(new RegExp(`the database is at lifecycle revision ${before}, but this home has seen revision ${newest} committed: the store went back in time`));
  expect(boot.stderr).toMatch(/--accept-older-store/);
  expect(cli.inspect().revision).toBe(before); // nothing was written into it
  expect(await start(cli)).toMatchObject({ serving: false, code: EXIT.STORE_BEHIND });

  const accepted = cli.run(['boot', '--accept-older-store']);
  expect(accepted.status).toBe(0);
  expect(accepted.stderr).toMatch(new RegExp(`the high-water mark moved from revision ${newest} to ${before}`));
  expect(cli.run(['boot']).status).toBe(0);
  expect(await deviceNames(cli)).toEqual(OLD);
});

it('a SIGTERM the moment the server says it serves shuts it down cleanly: exit 0, no pid file left', async () => {
  const cli = copyOfSource('edges-early-sigterm');
  const child = cli.spawn(['start'], { KEYWARD_PORT: '0', KEYWARD_HOST: '127.0.0.1' });
  servers.push(child);
  child.stdin!.end();
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let output = '';
  let sent = false;
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    if (!sent && /keyward: serving https:/.test(output)) sent = child.kill('SIGTERM');
  });
  const result = await exited;
  expect({ ...result, output }).toEqual({ code: 0, signal: null, output: expect.stringContaining('stopped') });
  expect(existsSync(join(cli.home, 'keyward.pid'))).toBe(false);
});
