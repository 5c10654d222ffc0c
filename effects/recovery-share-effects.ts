import { decodeShare, verifyShare } from '../crypto/recovery-shares';
import { isKeyCustodyError, KeyCustodyError } from '../errors/key-custody-error';
import { Pkcs11KeyWrapper } from '../hsm/pkcs11-key-wrapper';
import { isHsmStorage } from '../hsm/storage-type';
import type { EffectContext, EffectInput, EffectOutput } from '../machines/effect-signatures';
import type { KeyCustody } from './key-custody';

type ShareEffect = 'createRecoveryShares' | 'collectRecoveryShare' | 'recoverDekWithShares';
export type RecoveryShareImplementations = { [N in ShareEffect]: (input: EffectInput<N>, context: EffectContext) => Promise<EffectOutput<N>> };

/**
 * The recovery shares' effects (docs/lifecycle.md "Recovery shares"). The shares themselves only
 * pass through: out to the sender once (EventSecrets.output), in beside SUBMIT_RECOVERY_SHARE into
 * this process's collector; the outputs, which the log and the snapshot keep, hold counts and ids.
 */
export function recoveryShareEffects(custody: KeyCustody): RecoveryShareImplementations {
  const store = custody.store;

  return {
    createRecoveryShares: async ({ shares, threshold }, { secrets, checkpoint }) => {
      // Re-run by a BOOT after a crash, nobody would see the shares: make none rather than a set nobody holds.
      if (!secrets.output) {
        throw new KeyCustodyError('RECOVERY_SHARES_NOT_SHOWN', 'the recovery shares cannot be shown to anyone now (the request that asked for them has ended): none were made; make them again');
      }
      if (!isHsmStorage(await store.storage.storageType())) throw new KeyCustodyError('DEK_UNAVAILABLE', 'software storage has no DEK to make recovery shares for');
      await custody.ensureDek();
      // Another process may have added a DEK: every live one gets a recovery copy.
      await custody.reloadKeyset();
      if (custody.keyring.current === null) throw new KeyCustodyError('DEK_UNAVAILABLE', 'the keyset is not loaded: recovery shares cannot be made now');
      await checkpoint('before-replace');
      const made = await custody.hierarchy.createRecoveryShares(shares, threshold);
      secrets.output('shares', made.shares);
      return { shareSetId: made.shareSetId, shares, threshold, dekKeyIds: made.dekKeyIds };
    },

    collectRecoveryShare: async (_input, { secrets }) => {
      const share = decodeShare(secrets.get('share'));
      const set = await store.keyMaterial.recoveryShareSet();
      if (!set) {
        share.shamir.fill(0);
        throw new KeyCustodyError('RECOVERY_SHARES_MISSING', 'no recovery share set was made for this installation: give the backup password');
      }
      try {
        verifyShare(share, set);
      } catch (error) {
        share.shamir.fill(0);
        throw error;
      }
      const status = custody.recoveryShares.add(share, set);
      return { shareSetId: set.shareSetId, index: share.index, collected: status.indexes.length, threshold: set.threshold };
    },

    recoverDekWithShares: async (_input, { checkpoint }) => {
      const set = await store.keyMaterial.recoveryShareSet();
      const shares = custody.recoveryShares.take();
      if (!set || shares.length < set.threshold) {
        throw new KeyCustodyError(
          'RECOVERY_SHARE_INVALID',
          `only ${shares.length} recovery share(s) are in this process's memory (the others were forgotten after a time-out or a restart): enter them again`,
        );
      }
      let dekKeyId: string;
      try {
        await checkpoint('before-combine');
        dekKeyId = await custody.hierarchy.recoverWithShares(shares);
      } catch (error) {
        // Shares that do not combine are all dropped: which one is wrong cannot be told.
        if (isKeyCustodyError(error, 'RECOVERY_SHARE_WRONG')) custody.recoveryShares.forget();
        throw error;
      }
      custody.recoveryShares.forget();
      await checkpoint('dek-recovered');
      // As with the password (recoverDek): a KEK if the token has none, every live DEK wrapped under it.
      const token = await custody.requireToken();
      const kek = token.ensureKek();
      await custody.hierarchy.rewrap(new Pkcs11KeyWrapper(token));
      await checkpoint('rewrapped');
      return { dekKeyId, kekId: kek.id, shareSetId: set.shareSetId, sharesUsed: set.threshold };
    },
  };
}
