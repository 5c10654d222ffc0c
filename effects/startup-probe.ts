import { isSchemaPresent, pendingMigrations } from '../db/database';
import { isKeyCustodyError } from '../errors/key-custody-error';
import { isHsmStorage } from '../hsm/storage-type';
import { isTokenProblem } from '../machines/lifecycle-machine';
import type { StartupContext } from '../machines/startup-context';
import { recoverPinChange } from '../hsm/pin-change';
import { parsePinSource } from '../hsm/pin-source';
import type { Pkcs11Token } from '../hsm/pkcs11-token';
import type { KeyCustody } from './key-custody';
import { verifyWraps } from './second-kek-effects';
import { auditTransitionLogForBoot } from './transition-log-audit';

/**
 * Builds the StartupContext from what is really there: the schema, the version row, the storage
 * configuration, the token (read fresh from the module), and whether the stored wrapped DEK unwraps
 * with the KEK in this process — in which case the DEK stays in this process's keyring.
 * `wizardCompleted` comes from the persisted lifecycle: the machine's own record of its wizard.
 */
export async function probeStartup(custody: KeyCustody, appVersion: string, wizardCompleted: boolean, deployment = 'default', clock: () => Date = () => new Date()): Promise<StartupContext> {
  const store = custody.store;
  const base: StartupContext = {
    dbInitialized: false,
    dbVersion: null,
    appVersion,
    schemaPending: false,
    wizardCompleted: false,
    storageType: null,
    tokenPresent: null,
    kekPresent: null,
    dekAvailable: null,
    backupCopyPresent: false,
    tokenProblem: null,
    logBrokenAt: null,
    logProblem: null,
    probedAt: clock().toISOString(),
  };
  if (!(await isSchemaPresent(store.db))) return base;

  const storageType = await store.storage.storageType();
  const record = await store.keyMaterial.current();
  const context: StartupContext = {
    ...base,
    dbInitialized: true,
    dbVersion: await store.appVersion.get(),
    schemaPending: (await pendingMigrations(store.db)).length > 0,
    wizardCompleted,
    storageType,
    backupCopyPresent: record?.backupCopy != null,
  };
  if (!isHsmStorage(storageType)) return withLogAudit(custody, context, deployment);

  const token = await custody.token();
  if (!token) return withLogAudit(custody, { ...context, tokenPresent: null, kekPresent: null, dekAvailable: false }, deployment);
  await finishPinChange(custody, token);
  // By the CKA_ID the wraps name: a KEK rotation interrupted by a crash leaves two KEKs under one label.
  const storedKekId = record?.wrapped?.kek.id || undefined;
  const probe = await token.probe(undefined, storedKekId);
  const kekPresent = probe.kek !== null && (record?.wrapped ? record.wrapped.kek.id === '' || record.wrapped.kek.id === probe.kek.id : true);
  let dekAvailable = false;
  let tokenProblem = probe.problem ?? null;
  if (probe.tokenPresent && kekPresent && record?.wrapped) {
    custody.keyring.clear();
    try {
      await custody.hierarchy.unwrapKeyset(await custody.wrapper());
      dekAvailable = true;
    } catch (error) {
      // A corrupt wrapped blob is "DEK not available"; a PIN or module problem is a problem of its own.
      if (isKeyCustodyError(error) && isTokenProblem(error.code)) tokenProblem = error.code;
    }
  }
  // A token that could not be read says nothing about its KEK either.
  const kekKnown = probe.tokenPresent === null ? null : probe.tokenPresent && kekPresent;
  const primaryProblem = tokenProblem ?? (probe.tokenPresent === false ? 'TOKEN_MISSING' : kekKnown === false ? 'KEK_MISSING' : 'DEK_UNAVAILABLE');
  const kekHealth = record?.wrapped ? await probeSecondKek(custody, dekAvailable, primaryProblem, clock) : null;
  const probed: StartupContext = { ...context, tokenPresent: probe.tokenPresent, kekPresent: kekKnown, dekAvailable: dekAvailable || kekHealth?.second === true, tokenProblem };
  return withLogAudit(custody, kekHealth ? { ...probed, kekHealth } : probed, deployment);
}

/**
 * With a second KEK configured: when the primary unwrapped the keyset, the second's wraps are
 * unwrapped and compared with it; when the primary did not, the keyset is unwrapped with the second
 * (docs/lifecycle.md "A second KEK"). Each KEK's health is recorded with the time it last changed.
 */
async function probeSecondKek(custody: KeyCustody, primaryOk: boolean, primaryProblem: string, clock: () => Date): Promise<{ primary: boolean; second: boolean } | null> {
  const repository = custody.store.secondKek;
  if (!(await repository.config())) return null;
  let secondOk = false;
  let secondProblem: string | null = null;
  try {
    if (primaryOk) {
      const wraps = await repository.wraps();
      await verifyWraps(custody, (await custody.secondWrapper())!, (record) => wraps.get(record.dekKeyId) ?? null);
    } else {
      custody.keyring.clear();
      await custody.unwrapKeysetWithSecondKek();
    }
    secondOk = true;
  } catch (error) {
    if (!primaryOk) custody.keyring.clear();
    secondProblem = isKeyCustodyError(error) ? error.code : 'PKCS11_ERROR';
  }
  const at = clock().toISOString();
  await repository.recordHealth('primary', primaryOk, primaryOk ? null : primaryProblem, at);
  await repository.recordHealth('second', secondOk, secondProblem, at);
  return { primary: primaryOk, second: secondOk };
}

/**
 * A PIN change a crash interrupted (docs/lifecycle.md "Key rotation") is finished before the first
 * login: otherwise the token's new PIN and the file's old one would lock keyward out.
 */
async function finishPinChange(custody: KeyCustody, token: Pkcs11Token): Promise<void> {
  const config = await custody.store.storage.token();
  if (!config) return;
  try {
    await recoverPinChange({ token, pinSource: parsePinSource(config.pinSource, custody.config.secretsDir) });
  } catch {
    // The probe's own login reports what is wrong with the PIN (WRONG_PIN, PIN_MISSING).
  }
}

/** The transition log's chain, verified with whatever DEK the probe could unwrap (from its checkpoint when one is vouched for). */
async function withLogAudit(custody: KeyCustody, context: StartupContext, deployment: string): Promise<StartupContext> {
  const verdict = await auditTransitionLogForBoot(custody.store, custody.keyring, deployment);
  return { ...context, logBrokenAt: verdict.firstBroken?.revision ?? null, logProblem: verdict.firstBroken?.message ?? null };
}
