import { readFileSync } from 'node:fs';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chainKeyFromDek, rowFromDatabase, verifyChain } from '../../db/audit-chain';
import type { Knex } from 'knex';
import { CliHome } from '../support/cli';
import { Install } from '../support/install';
import { testDir } from '../support/run-dir';
import { newSecret } from '../support/secrets';
import { completeSoftHsmWizard, wizardSecrets, withStore } from '../support/wizard';

/**
 * The tamper-evident transition log and the restore drill: deleting, editing or reordering any row is
 * reported at that row; BOOT holds over a broken chain until an operator acknowledges it; a drill on a
 * real archive reports its RTO and leaves nothing behind.
 */
jest.setTimeout(300_000);

describe('the hash-chained transition log', () => {
  let install: Install;

  beforeAll(async () => {
    install = await Install.create('audit');
    await install.boot();
    await install.walkWizard('softhsm');
    await install.restart();
    await install.boot();
  });
  afterAll(() => install.close());

  /** Tampers inside a transaction that is rolled back, verifies what the tampered table holds. */
  async function verdictAfter(tamper: (trx: Knex.Transaction) => Promise<void>) {
    const db = install.runtime.store.db;
    let verdict: ReturnType<typeof verifyChain> | null = null;
    await db
      .transaction(async (trx) => {
        await tamper(trx);
        const rows = (await trx('transition_log').where({ deployment: 'default' }).orderBy('revision')).map(rowFromDatabase);
        const keyring = install.runtime.keyring;
        verdict = verifyChain(rows, (id) => (id === `dek:${keyring.current}` ? chainKeyFromDek(keyring.current!, keyring.currentKey()).key : null));
        throw new Error('rollback');
      })
      .catch((error: Error) => {
        if (error.message !== 'rollback') throw error;
      });
    return verdict!;
  }

  it('is intact, keyed with the DEK once there is one', async () => {
    const rows = await install.runtime.store.lifecycle.chain('default');
    expect(rows.length).toBeGreaterThan(20);
    expect(rows.some((r) => r.chainKey === 'none')).toBe(true);
    expect(rows.at(-1)!.chainKey).toMatch(/^dek:[0-9a-f]{16}$/);
    expect(await install.runtime.audit()).toMatchObject({ ok: true, unverifiedRows: 0, firstBroken: null });
  });

  it('reports a deleted row, an edited row and two swapped rows at that row, for every row', async () => {
    const revisions = (await install.runtime.store.lifecycle.chain('default')).map((r) => r.revision);
    for (const revision of revisions) {
      const deleted = await verdictAfter((trx) =>
        trx('transition_log')
          .where({ revision })
          .delete()
          .then(() => undefined),
      );
      expect({ revision, broken: deleted.firstBroken?.revision }).toEqual({ revision, broken: revision === revisions.length ? undefined : revision });
      const edited = await verdictAfter((trx) =>
        trx('transition_log')
          .where({ revision })
          .update({ to_state: 'operational-but-not-really' })
          .then(() => undefined),
      );
      expect({ revision, broken: edited.firstBroken?.revision, problem: edited.firstBroken?.problem }).toEqual({ revision, broken: revision, problem: 'hash' });
      if (revision < revisions.length) {
        const swapped = await verdictAfter(async (trx) => {
          await trx('transition_log').where({ revision }).update({ revision: -1 });
          await trx('transition_log')
            .where({ revision: revision + 1 })
            .update({ revision });
          await trx('transition_log')
            .where({ revision: -1 })
            .update({ revision: revision + 1 });
        });
        expect({ revision, broken: swapped.firstBroken?.revision }).toEqual({ revision, broken: revision });
      }
    }
  });
});

describe('audit verify, and BOOT over a broken chain, through the CLI', () => {
  const secrets = wizardSecrets();
  let cli: CliHome;

  beforeAll(() => {
    cli = new CliHome('audit-cli');
    expect(cli.run(['boot']).status).toBe(0);
    completeSoftHsmWizard(cli, secrets);
  });

  it('names the first broken row, and holds BOOT until that row is acknowledged', async () => {
    expect(cli.run(['audit', 'verify']).status).toBe(0);
    await withStore(cli, (store) => store.db('transition_log').where({ revision: 7 }).update({ source: 'forged' }));
    const verify = cli.run(['audit', 'verify']);
    expect(verify.status).toBe(9);
    expect(verify.stdout).toMatch(/BROKEN at revision 7: revision 7 was altered/);

    const boot = cli.run(['boot']);
    expect(boot.status).toBe(9);
    expect(cli.inspect()).toMatchObject({ state: 'auditHold', accepts: ['BOOT', 'ACKNOWLEDGE_LOG_BREAK'] });
    expect((cli.inspect().context as { reason: string }).reason).toMatch(/broken at revision 7/);
    const wrong = cli.send('ACKNOWLEDGE_LOG_BREAK', { revision: 8 });
    expect(wrong.status).toBe(3);
    expect(wrong.stderr).toMatch(/first broken revision/);
    expect(cli.send('ACKNOWLEDGE_LOG_BREAK', { revision: 7 }).status).toBe(0);
    expect(cli.inspect().state).toBe('operational');
    // Acknowledged once: the next BOOT goes on; a new break holds it again.
    expect(cli.run(['boot']).status).toBe(0);
    await withStore(cli, (store) => store.db('transition_log').where({ revision: 2 }).delete());
    expect(cli.run(['boot']).status).toBe(9);
    expect(cli.run(['audit', 'verify']).stdout).toMatch(/BROKEN at revision 2: revision 2 is missing/);
  });

  it('checks the device audit chain too: an edited entry is named, with exit 9, the transition log apart', async () => {
    const fresh = new CliHome('audit-devices');
    expect(fresh.run(['boot']).status).toBe(0);
    completeSoftHsmWizard(fresh, wizardSecrets());
    await withStore(fresh, async (store) => {
      const id = await store.devices.create({ name: 'router-1', estPassword: 'est-password-1', cmpSharedSecret: 'cmp-secret-1' }, 'cli');
      await store.devices.rename(id, 'router-one', 'cli');
    });
    const intact = fresh.run(['audit', 'verify']);
    expect(intact.status).toBe(0);
    expect(intact.stdout).toMatch(/transition log intact[\s\S]*device audit intact: 2 entries/);

    await withStore(fresh, (store) => store.db('device_audit').where({ seq: 1 }).update({ actor: 'someone else' }));
    const broken = fresh.run(['audit', 'verify']);
    expect(broken.status).toBe(9);
    expect(broken.stdout).toMatch(/transition log intact/);
    expect(broken.stdout).toMatch(/device audit BROKEN at entry 1: entry 1 was altered/);
    const json = JSON.parse(fresh.run(['audit', 'verify', '--json']).stdout) as { ok: boolean; firstBroken: unknown; deviceAudit: { ok: boolean; firstBroken: { seq: number } } };
    expect(json).toMatchObject({ ok: false, firstBroken: null, deviceAudit: { ok: false, firstBroken: { seq: 1 } } });
    // The device chain is not the lifecycle's: BOOT is not held over it.
    expect(fresh.run(['boot']).status).toBe(0);
  });
});

describe('the restore drill', () => {
  it('restores a real archive onto a scratch store, proves the canary, prints the RTO, and leaves nothing', async () => {
    const secrets = wizardSecrets();
    const cli = new CliHome('drill-source');
    expect(cli.run(['boot']).status).toBe(0);
    completeSoftHsmWizard(cli, secrets);
    await withStore(cli, async (store) => {
      for (let i = 0; i < 10; i++) await store.devices.create({ name: `d${i}`, estPassword: newSecret('est') });
    });
    const passphrase = `Pp-${newSecret('passphrase')}`;
    const archive = join(testDir('drill-archive'), 'a.kwbak');
    expect(cli.run(['backup', '--output', archive, '--passphrase-file', cli.secretFile(passphrase)]).status).toBe(0);

    const run = cli.run(['drill', '--input', archive, '--passphrase-file', cli.secretFile(passphrase), '--backup-password-file', cli.secretFile(secrets.backup)]);
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
    expect(run.stdout).toMatch(/ok {3}a known canary secret decrypts/);
    expect(run.stdout).toMatch(/ok {3}the transition log continues from the archive's chain head/);
    expect(run.stdout).toMatch(/RTO: \d+\.\d\d s/);
    expect(run.stdout).toMatch(/result: PASS/);
    const scratch = /scratch store (\S+) destroyed: yes/.exec(run.stdout)![1]!;
    expect(existsSync(scratch)).toBe(false);

    // A wrong backup password fails the drill at its step, and still cleans up.
    const failed = cli.run(['drill', '--input', archive, '--json', '--passphrase-file', cli.secretFile(passphrase), '--backup-password-file', cli.secretFile(`Wrong-${newSecret('backup')}`)]);
    expect(failed.status).toBe(17);
    const report = JSON.parse(failed.stdout) as { steps: Array<{ step: string; ok: boolean }>; scratchHome: string };
    expect(report.steps.find((s) => !s.ok)?.step).toMatch(/auto-restore/);
    expect(existsSync(report.scratchHome)).toBe(false);
    expect(readFileSync(cli.log, 'utf8')).not.toContain(secrets.backup);
  });
});
