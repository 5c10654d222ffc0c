import { execFileSync } from 'node:child_process';
import { createShareSet } from '../../crypto/recovery-shares';
import type { KeyMaterialRepository } from '../../db/repositories/key-material-repository';
import { engines } from '../support/databases';
import { Install } from '../support/install';
import { decryptWithKeysetPerDocs } from '../support/field-format';
import { recoverDeksWithSharesPerDocs, shareMatchesPerDocs } from '../support/recovery-share-format';
import { newSecret, registerSecret } from '../support/secrets';

/**
 * Recovery shares end to end in one process (docs/lifecycle.md "Recovery shares"): made in the
 * wizard, kept covering every live DEK through a DEK rotation, read by the independent reader of
 * docs/formats.md §6, and after a token loss K of them recover the keyset without the password.
 */
jest.setTimeout(180_000);

/** Makes a share set through the event, as the CLI and the web do; the shares come back beside the result. */
async function createShares(i: Install, shares: number, threshold: number): Promise<string[]> {
  let made: readonly string[] = [];
  const result = await i.runtime.send('CREATE_RECOVERY_SHARES', { shares, threshold }, {}, 'test', (box) => (made = box.revealed('shares') ?? []));
  if (result.outcome !== 'applied') throw new Error(`CREATE_RECOVERY_SHARES → ${result.outcome}: ${result.message ?? ''}`);
  for (const share of made) {
    registerSecret(share);
    registerSecret(share.replace(/-/g, ''));
  }
  return [...made];
}

async function recoveryRows(keyMaterial: KeyMaterialRepository) {
  return (await keyMaterial.keyset()).map((record) => ({ dekKeyId: record.dekKeyId, recoveryCopy: record.recoveryCopy ?? null }));
}

/** One character changed into another of the alphabet: a typo the checksum must catch. */
function typo(share: string): string {
  const at = share.indexOf('-') + 2;
  return `${share.slice(0, at)}${share[at] === 'A' ? 'B' : 'A'}${share.slice(at + 1)}`;
}

describe.each(engines())('recovery shares on %s', (engine) => {
  let i: Install;
  afterAll(async () => i?.close());

  it('are made in the wizard, cover every live DEK through a rotation, and recover the keyset after a token loss without the password', async () => {
    i = await Install.create('recovery-shares', engine);
    await i.boot();
    await i.walkWizard('softhsm', 'backupPassword');
    expect((await i.expectSend('SET_BACKUP_PASSWORD', {}, { password: i.backupPassword })).wizardState).toBe('WIZARD_RECOVERY_SHARES');
    // Made by an event whose sender cannot show them (no output channel, as a BOOT re-running it): none are made.
    const unseen = await i.send('CREATE_RECOVERY_SHARES', { shares: 5, threshold: 3 });
    expect(unseen).toMatchObject({ outcome: 'rejected', error: { code: 'RECOVERY_SHARES_NOT_SHOWN' } });
    expect(await i.runtime.store.keyMaterial.recoveryShareSet()).toBeNull();

    const first = await createShares(i, 5, 3);
    expect((await i.runtime.engine.inspect({ historyLimit: 0 })).wizardState).toBe('WIZARD_DEMO_DATA');
    await i.expectSend('SKIP_DEMO_DATA');
    await i.expectSend('CREATE_ADMIN', { username: 'admin' }, { password: i.adminPassword });
    const estPassword = newSecret('est');
    const cmpSecret = newSecret('cmp');
    await i.runtime.store.devices.create({ name: 'device', estPassword, cmpSharedSecret: cmpSecret });

    // Re-made by an administrator: a new set, the old one's copies gone with it.
    const firstSet = (await i.runtime.store.keyMaterial.recoveryShareSet())!;
    const shares = await createShares(i, 5, 3);
    const set = (await i.runtime.store.keyMaterial.recoveryShareSet())!;
    expect(set).toMatchObject({ shares: 5, threshold: 3 });
    expect(set.shareSetId).not.toBe(firstSet.shareSetId);
    expect(shares).toHaveLength(5);
    expect(shares.every((share) => /^([A-Z2-7]{5}-){15}[A-Z2-7]{5}$/.test(share))).toBe(true);
    expect(shareMatchesPerDocs(shares[1]!, set)).toBe(true);
    expect(shareMatchesPerDocs(first[1]!, set)).toBe(false);

    // A DEK rotation adds the new DEK's recovery copy and wipes the retired one's, without the shares.
    const before = (await i.runtime.store.keyMaterial.current())!.dekKeyId;
    await i.expectSend('ROTATE_DEK');
    const rows = await recoveryRows(i.runtime.store.keyMaterial);
    expect(rows.map((row) => row.dekKeyId)).not.toContain(before);
    expect(rows.every((row) => row.recoveryCopy !== null)).toBe(true);
    expect((await i.runtime.store.keyMaterial.all()).find((record) => record.dekKeyId === before)!.recoveryCopy).toBeNull();

    // docs/formats.md §6, read without keyward: three shares (any three) give every DEK, which decrypts a field.
    const deks = await recoverDeksWithSharesPerDocs([shares[4]!, shares[0]!, shares[2]!], set, rows as { dekKeyId: string; recoveryCopy: Buffer }[]);
    const device = (await i.runtime.store.db('devices').where({ name: 'device' }).first()) as { est_password: Buffer };
    expect(decryptWithKeysetPerDocs(Buffer.from(device.est_password), deks, 'devices', 'est_password').value).toBe(estPassword);
    await expect(recoverDeksWithSharesPerDocs([first[0]!, first[1]!, first[2]!], set, rows as { dekKeyId: string; recoveryCopy: Buffer }[])).rejects.toThrow('another set');

    // The token is lost; a new one is set up; then the shares, one event each.
    await i.restart();
    execFileSync('rm', ['-rf', i.tokenDir]);
    execFileSync('mkdir', ['-p', i.tokenDir]);
    expect((await i.boot()).wizardState).toBe('WIZARD_SETUP_HSM_AUTORESTORE');
    expect((await i.send('SETUP_HSM', i.hsmSetupPayload(), i.hsmSecrets())).wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    const failures = async () => (await i.runtime.engine.inspect({ historyLimit: 0 })).context.passwordFailures;

    // A typo: refused, no attempt counted, nothing collected.
    expect(await i.send('SUBMIT_RECOVERY_SHARE', {}, { share: typo(shares[0]!) })).toMatchObject({
      outcome: 'rejected',
      error: { code: 'RECOVERY_SHARE_INVALID', message: expect.stringContaining('typo') },
    });
    expect(await failures()).toBe(0);
    // A share of the old set, and one of a set never stored: wrong, counted like a wrong password.
    expect(await i.send('SUBMIT_RECOVERY_SHARE', {}, { share: first[0]! })).toMatchObject({ outcome: 'rejected', error: { code: 'RECOVERY_SHARE_WRONG' } });
    const stranger = (await createShareSet(2, 2)).shares[0]!;
    registerSecret(stranger);
    expect(await i.send('SUBMIT_RECOVERY_SHARE', {}, { share: stranger })).toMatchObject({ outcome: 'rejected', error: { code: 'RECOVERY_SHARE_WRONG' } });
    expect(await failures()).toBe(2);
    expect(i.runtime.custody.recoveryShares.status()).toBeNull();

    // Two shares are not enough (the same one twice counts once).
    for (const share of [shares[3]!, shares[1]!, shares[1]!])
      expect((await i.expectSend('SUBMIT_RECOVERY_SHARE', {}, { share: share.toLowerCase().replace(/-/g, ' ') })).wizardState).toBe('WIZARD_AUTO_RESTORE_PASSWORD');
    expect(i.runtime.custody.recoveryShares.status()).toMatchObject({ shareSetId: set.shareSetId, threshold: 3, indexes: [2, 4] });
    expect(i.runtime.keyring.current).toBeNull();

    const done = await i.expectSend('SUBMIT_RECOVERY_SHARE', {}, { share: shares[2]! });
    expect(done.state).toBe('operational');
    expect(i.runtime.custody.recoveryShares.status()).toBeNull();
    expect(await failures()).toBe(0);
    const device2 = (await i.runtime.store.devices.findByName('device'))!;
    expect([device2.estPassword, device2.cmpSharedSecret]).toEqual([estPassword, cmpSecret]);

    // The log names the steps by set id and counts, never a share.
    const history = (await i.runtime.engine.inspect({ historyLimit: 40 })).history;
    const collected = history.filter((row) => row.eventType === 'collectRecoveryShare:done').map((row) => row.payload);
    expect(collected).toContainEqual({ output: { shareSetId: set.shareSetId, index: 4, collected: 1, threshold: 3 } });
    expect(history.some((row) => row.eventType === 'recoverDekWithShares:done')).toBe(true);

    // The keyset is wrapped under the new token's KEK again: a restart comes straight back.
    await i.restart();
    expect((await i.boot()).state).toBe('operational');
  });
});
