import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ValidationError } from '../db/validation';
import { KeyCustodyError } from '../errors/key-custody-error';
import type { KeyMaterialRecord } from '../hsm/key-hierarchy';
import type { KeyWrapper, WrappedKey } from '../hsm/key-wrapper';
import { Pkcs11KeyWrapper } from '../hsm/pkcs11-key-wrapper';
import { Pkcs11Module } from '../hsm/pkcs11-module';
import { Pkcs11Token } from '../hsm/pkcs11-token';
import { readCapabilities, requireUsableToken } from '../hsm/token-capabilities';
import type { EffectContext, EffectInput, EffectOutput } from '../machines/effect-signatures';
import type { KeyCustody } from './key-custody';

/** The second token's user PIN, beside the first one's in the secrets directory (an orchestrator secret like it). */
export const SECOND_PIN_FILE = 'hsm-second-pin';

type SecondKekEffect = 'addSecondKek' | 'removeSecondKek' | 'wrapKeysetUnderPrimary';
export type SecondKekImplementations = { [N in SecondKekEffect]: (input: EffectInput<N>, context: EffectContext) => Promise<EffectOutput<N>> };

/**
 * The second KEK (docs/lifecycle.md "A second KEK"), Vault's multi-wrapper: every live DEK is
 * wrapped under each configured KEK and unwraps with whichever is present. Each effect can run
 * again after a crash: it reuses the KEK it finds on the token and rewrites the wraps.
 */
export function secondKekEffects(custody: KeyCustody, kekLabel: string): SecondKekImplementations {
  const store = custody.store;
  const secretsDir = custody.config.secretsDir;

  return {
    addSecondKek: async ({ modulePath, label }, { secrets, checkpoint }) => {
      const pin = secrets.get('pin');
      if (/[\r\n]/.test(pin)) throw new ValidationError('pin', 'the PIN holds a line break; nothing was changed');
      const primary = await store.storage.token();
      if (primary && primary.modulePath === modulePath && primary.tokenLabel === label) {
        throw new KeyCustodyError(
          'SECOND_KEK_REFUSED',
          `token "${label}" holds the primary KEK already: the second KEK belongs in another token (another label or another module); nothing was changed`,
        );
      }
      const existing = await store.secondKek.config();
      if (existing && (existing.modulePath !== modulePath || existing.tokenLabel !== label)) {
        throw new KeyCustodyError('SECOND_KEK_REFUSED', `a second KEK is configured already, on token "${existing.tokenLabel}": remove it first (REMOVE_SECOND_KEK); nothing was changed`);
      }
      await custody.ensureDek();
      if (custody.keyring.current === null) throw new KeyCustodyError('DEK_UNAVAILABLE', 'the keyset is not loaded: no second KEK can wrap it now');
      // Ask the module first: a token keyward cannot wrap with is refused before a KEK is made on it.
      Pkcs11Module.open(modulePath).refresh();
      const capabilities = readCapabilities(modulePath, label);
      if (capabilities === null) throw new KeyCustodyError('TOKEN_MISSING', `no token labelled "${label}" in ${modulePath}; nothing was changed`);
      requireUsableToken(capabilities);

      const pinFile = join(secretsDir, SECOND_PIN_FILE);
      writePinFile(pinFile, pin);
      try {
        const token = new Pkcs11Token({ modulePath, tokenLabel: label, kekLabel, pin: { file: pinFile } });
        await checkpoint('before-generate');
        const found = token.findKekId();
        const kek = found ?? token.generateKek();
        const wrapper = new Pkcs11KeyWrapper(token, { kekId: kek.id });
        let wraps: Map<string, WrappedKey>;
        try {
          wraps = await custody.hierarchy.wrapKeyset(wrapper);
        } catch (error) {
          // A KEK this set-up made and could not use is not left behind.
          if (!found) token.destroyKek(kek);
          throw error;
        }
        await checkpoint('before-commit');
        await store.secondKek.save({ modulePath, tokenLabel: label, kekLabel, kekId: kek.id, pinSource: `secrets:${SECOND_PIN_FILE}` }, wraps);
        await store.secondKek.recordHealth('second', true, null);
        if (!(await store.secondKek.health()).some((h) => h.kek === 'primary')) await store.secondKek.recordHealth('primary', true, null);
        return { tokenLabel: label, kekId: kek.id, reused: found !== null, dekKeyIds: [...wraps.keys()] };
      } catch (error) {
        // Without a configuration that names it, the PIN file is nobody's: it goes.
        if (!(await store.secondKek.config())) rmSync(pinFile, { force: true });
        throw error;
      }
    },

    removeSecondKek: async (_input, { checkpoint }) => {
      const config = await store.secondKek.config();
      if (!config) throw new KeyCustodyError('SECOND_KEK_REFUSED', 'no second KEK is configured; nothing was changed');
      await custody.ensureDek();
      // The keyset must not be left to the password alone: the primary KEK has to give back every DEK first.
      try {
        await verifyWraps(custody, await custody.wrapper(), (record) => record.wrapped);
      } catch (error) {
        throw new KeyCustodyError(
          'SECOND_KEK_REFUSED',
          `the primary KEK does not unwrap the keyset (${(error as { code?: string }).code ?? 'error'}): replace the first token first (SETUP_HSM), then remove the second KEK; nothing was changed`,
          { cause: error },
        );
      }
      const dekKeyIds = [...(await store.secondKek.wraps()).keys()];
      const token = await custody.secondToken();
      await checkpoint('before-remove');
      await store.secondKek.remove();
      await checkpoint('removed');
      // The wraps are gone: the key is destroyed where the token can still be reached.
      let kekDestroyed = false;
      try {
        token!.destroyKek({ label: config.kekLabel, id: config.kekId });
        kekDestroyed = true;
      } catch {
        // The token is away: its KEK wraps nothing of this deployment any more.
      }
      rmSync(join(secretsDir, SECOND_PIN_FILE), { force: true });
      return { tokenLabel: config.tokenLabel, kekId: config.kekId, dekKeyIds, kekDestroyed };
    },

    wrapKeysetUnderPrimary: async (_input, { checkpoint }) => {
      // The keyset as the second KEK gave it back (the primary's old wraps name a KEK that is gone).
      await custody.ensureDek();
      if (custody.keyring.current === null) throw new KeyCustodyError('DEK_UNAVAILABLE', 'the keyset is not loaded: the new KEK has nothing to wrap');
      const token = await custody.requireToken();
      const kek = token.findKekId();
      if (!kek) throw new KeyCustodyError('KEK_MISSING', `no KEK on token "${token.config.tokenLabel}": create it first`);
      await checkpoint('before-commit');
      const dekKeyIds = await custody.hierarchy.rewrap(new Pkcs11KeyWrapper(token, { kekId: kek.id }));
      await store.secondKek.recordHealth('primary', true, null);
      return { kekId: kek.id, dekKeyIds };
    },
  };
}

/**
 * A DEK rotation's new DEK wrapped under the second KEK too (every live DEK that has no wrap there
 * yet); nothing when no second KEK is configured.
 */
export async function coverWithSecondKek(custody: KeyCustody): Promise<string[]> {
  const wrapper = await custody.secondWrapper();
  if (!wrapper) return [];
  const wrapped = await custody.store.secondKek.wraps();
  const missing = new Set((await custody.store.keyMaterial.keyset()).map((record) => record.dekKeyId).filter((id) => !wrapped.has(id)));
  if (missing.size === 0) return [];
  const wraps = await custody.hierarchy.wrapKeyset(wrapper, missing);
  await custody.store.secondKek.putWraps(wraps);
  return [...wraps.keys()];
}

/** Every live DEK's wrap unwraps under `wrapper` to the key the keyring holds. */
export async function verifyWraps(custody: KeyCustody, wrapper: KeyWrapper, wrapOf: (record: KeyMaterialRecord) => WrappedKey | null): Promise<void> {
  for (const record of await custody.store.keyMaterial.keyset()) {
    const wrapped = wrapOf(record);
    if (!wrapped) throw new KeyCustodyError('KEK_MISSING', `DEK ${record.dekKeyId} has no wrap under this KEK`);
    const key = await wrapper.unwrap(wrapped);
    const same = key.equals(custody.keyring.key(record.dekKeyId));
    key.fill(0);
    if (!same) throw new KeyCustodyError('WRAPPED_BLOB_CORRUPT', `the wrap of DEK ${record.dekKeyId} unwraps to another key`);
  }
}

/** Written whole or not at all, mode 0600: a crash never leaves half a PIN. */
function writePinFile(path: string, pin: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${pin}\n`, { mode: 0o600 });
  renameSync(temporary, path);
}
