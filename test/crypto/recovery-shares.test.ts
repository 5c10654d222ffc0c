import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sealDekCopy } from '../../crypto/backup-key';
import { generateDek } from '../../crypto/dek-keyring';
import { combineShares, createShareSet, decodeShare, RecoveryShareSetRecord, verifyShare } from '../../crypto/recovery-shares';
import { expectCode } from '../support/expect-code';
import { readSharePerDocs, recoverDeksWithSharesPerDocs, shareMatchesPerDocs } from '../support/recovery-share-format';
import { registerSecret } from '../support/secrets';

/** docs/formats.md §6: keyward's shares and recovery copies, and the independent reader of test/support/recovery-share-format.ts. */
describe('recovery shares (docs/formats.md §6)', () => {
  async function newSet(shares = 5, threshold = 3): Promise<{ set: RecoveryShareSetRecord; shares: string[] }> {
    const made = await createShareSet(shares, threshold);
    for (const share of made.shares) registerSecret(share);
    return { set: { ...made.record, createdAt: '' }, shares: made.shares };
  }

  it('the reader uses nothing of keyward: Node’s crypto, the audited library and the KWD1 reader', () => {
    const imports = [...readFileSync(join(__dirname, '../support/recovery-share-format.ts'), 'utf8').matchAll(/from '([^']+)'/g)].map((m) => m[1]).sort();
    expect(imports).toEqual(['./backup-key-format', 'node:crypto', 'shamir-secret-sharing']);
  });

  it('any K shares, in any order, open every recovery copy, in keyward and in the reader; fewer than K do not', async () => {
    const { set, shares } = await newSet();
    const deks = [generateDek(), generateDek()];
    const rows = deks.map((dek) => ({ dekKeyId: dek.keyId, recoveryCopy: sealDekCopy(dek, set.publicKey) }));
    for (const pick of [
      [0, 1, 2],
      [4, 2, 0],
      [3, 1, 4],
    ]) {
      const recovered = await recoverDeksWithSharesPerDocs(
        pick.map((i) => shares[i]!),
        set,
        rows,
      );
      expect(recovered).toEqual(new Map(deks.map((dek) => [dek.keyId, dek.key])));
      const key = await combineShares(
        pick.map((i) => decodeShare(shares[i]!)),
        set,
      );
      expect(key.publicKey).toEqual(set.publicKey);
      key.wipe();
    }
    await expectCode(combineShares([decodeShare(shares[0]!), decodeShare(shares[1]!)], set), 'RECOVERY_SHARE_INVALID');
    await expect(recoverDeksWithSharesPerDocs([shares[0]!, shares[1]!], set, rows)).rejects.toThrow();
  });

  it('reads the printed fields the same way as the reader, whatever the case, spaces and dashes', async () => {
    const { set, shares } = await newSet(4, 2);
    for (const [i, share] of shares.entries()) {
      const mine = decodeShare(share.toLowerCase().replace(/-/g, ' '));
      const theirs = readSharePerDocs(share);
      expect({ set: mine.shareSetId, index: mine.index, threshold: mine.threshold, shamir: mine.shamir }).toEqual({
        set: theirs.setId.toString('hex'),
        index: i + 1,
        threshold: 2,
        shamir: theirs.shamir,
      });
      expect(mine.shareSetId).toBe(set.shareSetId);
      expect(shareMatchesPerDocs(share, set)).toBe(true);
      expect(() => verifyShare(mine, set)).not.toThrow();
    }
  });

  it('catches every single-character typo at entry, and says where to look without echoing the share', async () => {
    const { shares } = await newSet(2, 2);
    const share = shares[0]!.replace(/-/g, '');
    for (let at = 0; at < share.length; at++) {
      const typo = `${share.slice(0, at)}${share[at] === 'Q' ? 'R' : 'Q'}${share.slice(at + 1)}`;
      const error = await expectCode(() => decodeShare(typo), 'RECOVERY_SHARE_INVALID');
      expect(error.message).not.toContain(share.slice(0, 8));
    }
    expect((await expectCode(() => decodeShare(share.slice(1)), 'RECOVERY_SHARE_INVALID')).message).toBe('a share is 80 characters (16 groups of 5); this one has 79');
    expect((await expectCode(() => decodeShare(`0${share.slice(1)}`), 'RECOVERY_SHARE_INVALID')).message).toMatch(/^character 1 \(group 1\) is not a letter A–Z or a digit 2–7/);
  });

  it('tells a share of another set, or one whose index or bytes were changed, from the set’s own', async () => {
    const mine = await newSet();
    const other = await newSet();
    await expectCode(() => verifyShare(decodeShare(other.shares[0]!), mine.set), 'RECOVERY_SHARE_WRONG');
    // Another set's commitments reject a share that claims this set's id.
    const forged = { ...decodeShare(other.shares[0]!), shareSetId: mine.set.shareSetId };
    await expectCode(() => verifyShare(forged, mine.set), 'RECOVERY_SHARE_WRONG');
    const share = decodeShare(mine.shares[1]!);
    await expectCode(() => verifyShare({ ...share, index: 3 }, mine.set), 'RECOVERY_SHARE_WRONG');
    await expectCode(() => verifyShare({ ...share, index: 9 }, mine.set), 'RECOVERY_SHARE_WRONG');
  });
});
