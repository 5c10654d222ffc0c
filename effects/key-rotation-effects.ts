import * as argon2 from 'argon2';
import { chainKeyFromDek } from '../db/audit-chain';
import { ValidationError } from '../db/validation';
import { KeyCustodyError } from '../errors/key-custody-error';
import { changeTokenPin } from '../hsm/pin-change';
import { parsePinSource } from '../hsm/pin-source';
import { Pkcs11KeyWrapper } from '../hsm/pkcs11-key-wrapper';
import type { EffectContext, EffectInput, EffectOutput } from '../machines/effect-signatures';
import type { KeyCustody } from './key-custody';
import { checkPasswordStrength } from './password-policy';
import { coverWithSecondKek } from './second-kek-effects';

type RotationEffect = 'generateNextKek' | 'wrapKeysetUnderKek' | 'destroyUnreferencedKeks' | 'addDek' | 'promoteDek' | 'reencryptValues' | 'retireOldDeks' | 'changeBackupPassword' | 'changeTokenPin';
export type RotationImplementations = { [N in RotationEffect]: (input: EffectInput<N>, context: EffectContext) => Promise<EffectOutput<N>> };

/**
 * The key lifecycle's effects (docs/lifecycle.md "Key rotation"). Each one is safe to run again
 * after a crash at any of its checkpoints: it first looks at what the token and the database
 * already hold (a KEK no wrap names yet, a pending DEK, the job's cursor) and goes on from there.
 */
export function keyRotationEffects(custody: KeyCustody, secretsDir: string): RotationImplementations {
  const store = custody.store;

  /** The KEK CKA_IDs that the live wraps name (one, except inside a failed commit). */
  const referencedKeks = async (): Promise<Set<string>> => new Set((await store.keyMaterial.keyset()).map((record) => record.wrapped?.kek.id).filter((id): id is string => !!id));

  return {
    generateNextKek: async (_input, { checkpoint }) => {
      await custody.ensureDek();
      const token = await custody.requireToken();
      const referenced = await referencedKeks();
      // An earlier run that crashed after generating left a KEK that no wrap names: take that one.
      const unreferenced = token.listKeks().find((kek) => !referenced.has(kek.id));
      if (unreferenced) return { keyId: unreferenced.id, reused: true };
      await checkpoint('before-generate');
      const kek = token.generateAdditionalKek();
      try {
        await new Pkcs11KeyWrapper(token, { kekId: kek.id }).selfTest();
      } catch (error) {
        token.destroyKek(kek);
        throw error;
      }
      return { keyId: kek.id, reused: false };
    },

    wrapKeysetUnderKek: async ({ keyId }, { checkpoint }) => {
      await custody.ensureDek();
      const token = await custody.requireToken();
      const wrapper = new Pkcs11KeyWrapper(token, { kekId: keyId });
      await checkpoint('before-commit');
      const dekKeyIds = await custody.hierarchy.rewrap(wrapper);
      await checkpoint('committed');
      return { kekId: keyId, dekKeyIds };
    },

    destroyUnreferencedKeks: async (_input, { checkpoint }) => {
      const token = await custody.requireToken();
      const referenced = await referencedKeks();
      if (referenced.size !== 1) {
        throw new KeyCustodyError('ROTATION_REFUSED', `the live wrapped DEKs name ${referenced.size} KEKs (${[...referenced].join(', ')}), not one: no KEK was destroyed`);
      }
      const [keep] = [...referenced] as [string];
      // The KEK every wrap needs must be on the token before any other one goes.
      if (!token.listKeks().some((kek) => kek.id === keep)) {
        throw new KeyCustodyError('KEK_MISSING', `the KEK ${keep} that the database names is not on the token: no KEK was destroyed`);
      }
      await checkpoint('before-destroy');
      const destroyed = token.destroyKeksExcept({ label: token.config.kekLabel, id: keep }).map((kek) => kek.id);
      return { destroyed, kept: keep };
    },

    addDek: async (_input, { checkpoint }) => {
      await custody.ensureDek();
      const wrapper = await custody.wrapper();
      await checkpoint('before-add');
      const added = await custody.hierarchy.addDek(wrapper);
      // Every copy: the new DEK is wrapped under the second KEK too, before it is promoted.
      await coverWithSecondKek(custody);
      return added;
    },

    promoteDek: async ({ keyId }, { checkpoint }) => {
      await custody.ensureDek();
      await custody.reloadKeyset();
      await checkpoint('before-promote');
      await custody.hierarchy.promote(keyId);
      return { keyId };
    },

    reencryptValues: async ({ keyId }, { checkpoint, progress }) => {
      await custody.ensureDek();
      await custody.reloadKeyset();
      return store.reencryption.run(keyId, {
        checkpoint,
        onProgress: (status) => progress({ done: status.valuesDone, total: status.valuesTotal, unit: 'values' }),
      });
    },

    retireOldDeks: async ({ keyId }, { checkpoint }) => {
      await custody.ensureDek();
      await custody.reloadKeyset();
      const keyset = await store.keyMaterial.keyset();
      const old = keyset.filter((record) => record.dekKeyId !== keyId && record.state !== 'pending').map((record) => record.dekKeyId);
      if (old.length === 0) return { retired: [] };
      const counts = await store.reencryption.countValuesByKeyId();
      const inUse = old.filter((id) => (counts.get(id) ?? 0) > 0);
      if (inUse.length > 0 || (counts.get('legacy') ?? 0) > 0) {
        throw new KeyCustodyError(
          'ROTATION_REFUSED',
          `values under DEK ${[...inUse, ...(counts.has('legacy') ? ['legacy'] : [])].join(', ')} remain: the re-encryption must run again before the old DEK is retired`,
        );
      }
      await checkpoint('before-retire');
      // The rows these DEKs keyed in the transition log must still verify: keep their chain keys.
      const chainKeys = old.map((id) => chainKeyFromDek(id, custody.keyring.key(id)));
      await store.keyMaterial.retire(old, async (trx) => {
        for (const chainKey of chainKeys) await store.logChainKeys.keep(trx, chainKey.id, chainKey.key);
        await store.secondKek.deleteWraps(old, trx);
      });
      for (const id of old) custody.keyring.forget(id);
      return { retired: old };
    },

    changeBackupPassword: async ({ authorizeWith, username }, { secrets, checkpoint }) => {
      const password = secrets.get('password');
      checkPasswordStrength(password, 'backup password');
      await custody.ensureDek();
      if (custody.keyring.current === null) throw new KeyCustodyError('DEK_UNAVAILABLE', 'the keyset is not loaded: the backup password cannot be changed now');
      if (authorizeWith === 'admin') {
        if (!username) throw new ValidationError('username', 'the administrator who authorizes the change is required');
        const admin = await store.admins.findByUsername(username);
        if (!admin || !(await argon2.verify(admin.passwordHash, secrets.get('adminPassword')))) {
          throw new KeyCustodyError('WRONG_BACKUP_PASSWORD', 'the administrator name or password is wrong');
        }
      } else {
        await custody.hierarchy.verifyBackupPassword(secrets.get('currentPassword'));
      }
      await checkpoint('before-replace');
      await custody.hierarchy.setBackupPassword(password);
      const kdf = custody.config.kdf;
      return { kdf: `argon2id m=${kdf.memoryKiB} t=${kdf.iterations} p=${kdf.parallelism}`, dekKeyIds: (await store.keyMaterial.keyset()).map((record) => record.dekKeyId) };
    },

    changeTokenPin: async (_input, { secrets, checkpoint }) => {
      const config = await store.storage.token();
      if (!config) throw new KeyCustodyError('TOKEN_MISSING', 'no PKCS#11 token is configured');
      const token = await custody.requireToken();
      await changeTokenPin({ token, pinSource: parsePinSource(config.pinSource, secretsDir), newPin: secrets.get('pin'), checkpoint });
      return { changed: true as const };
    },
  };
}
