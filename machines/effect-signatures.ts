import type { StorageType } from '../hsm/storage-type';
import type { HsmType } from './events';

/**
 * The side effects the machine invokes, by name, with the data each takes and returns. Inputs and
 * outputs are persisted with the snapshot, so they never hold secrets; an effect that needs one reads
 * it from the secrets that travel beside the current event (see server/lifecycle-engine.ts).
 */
export interface TlsSummary {
  fingerprintSha256: string;
  notAfter: string;
  origin: 'database' | 'temporary' | 'new';
}

export interface EffectSignatures {
  migrateDatabase: { input: { appVersion: string }; output: { applied: string[] } };
  issueTlsCredential: { input: { save: boolean }; output: TlsSummary };
  loadTlsFromDatabase: { input: Record<string, never>; output: TlsSummary };
  /** names: the CAs this run deactivated (absent in outputs recorded before summaries). */
  deactivateTokenCas: { input: { reason: string }; output: { deactivated: number; names?: string[] } };
  recordStorageType: { input: { storageType: StorageType }; output: { storageType: StorageType } };
  setUpToken: { input: { hsmType: HsmType; modulePath: string; label: string; slot: number | null; purpose: 'wizard' | 'auto_restore' }; output: { initialized: boolean } };
  /** reused: the KEK was on the token already (an earlier, interrupted or failed set-up made it). */
  createKek: { input: Record<string, never>; output: { kekId: string; reused?: boolean; mechanism?: string } };
  createDek: { input: Record<string, never>; output: { dekKeyId: string } };
  generateTlsCredential: { input: { subjectAltNames: string[] }; output: { credentialId: number; fingerprintSha256: string } };
  importTlsPkcs12: { input: { path: string }; output: { credentialId: number; fingerprintSha256: string } };
  importTlsFiles: { input: { keyFile: string; certificateFile: string; chainFile: string | null }; output: { credentialId: number; fingerprintSha256: string } };
  applyTlsCredential: { input: { credentialId: number }; output: TlsSummary };
  setBackupPassword: { input: Record<string, never>; output: { kdf: string } };
  addDemoData: { input: Record<string, never>; output: { devices: number } };
  createAdminUser: { input: { username: string }; output: { username: string } };
  recoverDek: { input: Record<string, never>; output: { dekKeyId: string; kekId: string } };
  /** Replaces the whole store with an archive's: the machine goes to `restored` (BOOT is next), where the engine ends the event. */
  restoreBackup: { input: { path: string }; output: { storeReplaced: true; quarantine: string } };
  /** KEK rotation: `keyId` is the new KEK's CKA_ID (reused: an interrupted run had made it). */
  generateNextKek: { input: Record<string, never>; output: { keyId: string; reused: boolean } };
  wrapKeysetUnderKek: { input: { keyId: string }; output: { kekId: string; dekKeyIds: string[] } };
  /** Destroys every KEK (by label) that no live wrapped DEK names: the old one after a rotation, the new one in a roll-back. */
  destroyUnreferencedKeks: { input: Record<string, never>; output: { destroyed: string[]; kept: string } };
  /** DEK rotation: `keyId` is the new DEK's key id. */
  addDek: { input: Record<string, never>; output: { keyId: string; reused: boolean } };
  promoteDek: { input: { keyId: string }; output: { keyId: string } };
  reencryptValues: { input: { keyId: string }; output: { values: number; batches: number } };
  retireOldDeks: { input: { keyId: string }; output: { retired: string[] } };
  changeBackupPassword: { input: { authorizeWith: 'backup_password' | 'admin'; username: string | null }; output: { kdf: string; dekKeyIds: string[] } };
  changeTokenPin: { input: Record<string, never>; output: { changed: true } };
  /** Auto-restore: opens every stored secret value with the recovered keyset; counts, never values. */
  checkSecretValues: { input: Record<string, never>; output: { checked: number; readable: number; unreadable: string[] } };
  /** The second KEK (found or made on its token) wraps every live DEK; key ids only. */
  addSecondKek: { input: { modulePath: string; label: string }; output: { tokenLabel: string; kekId: string; reused: boolean; dekKeyIds: string[] } };
  /** Its wraps deleted, its KEK destroyed where the token is reachable. */
  removeSecondKek: { input: Record<string, never>; output: { tokenLabel: string; kekId: string; dekKeyIds: string[]; kekDestroyed: boolean } };
  /** A new first token's KEK wraps the keyset the second KEK gave back. */
  wrapKeysetUnderPrimary: { input: Record<string, never>; output: { kekId: string; dekKeyIds: string[] } };
  /** Recovery shares (docs/formats.md §6): counts and the share-set id only; the shares go to EventSecrets.output. */
  createRecoveryShares: { input: { shares: number; threshold: number }; output: { shareSetId: string; shares: number; threshold: number; dekKeyIds: string[] } };
  collectRecoveryShare: { input: Record<string, never>; output: { shareSetId: string; index: number; collected: number; threshold: number } };
  recoverDekWithShares: { input: Record<string, never>; output: { dekKeyId: string; kekId: string; shareSetId: string; sharesUsed: number } };
}

export type EffectName = keyof EffectSignatures;
export type EffectInput<N extends EffectName> = EffectSignatures[N]['input'];
export type EffectOutput<N extends EffectName> = EffectSignatures[N]['output'];

/** How an effect failed, as the machine sees it: a code to branch on and a message to show. */
export interface EffectError {
  code: string;
  message: string;
  /** The input field at fault, when there is one, so a form can show the error beside it. */
  field?: string;
}

/** The secrets beside the current event (a PIN, a password): read, never stored. */
export interface EventSecrets {
  get(name: string): string;
  has(name: string): boolean;
  /**
   * Hands secrets an effect made (recovery shares) to whoever sent the event, to be shown once;
   * absent when nobody is there to show them (a BOOT re-running the effect after a crash).
   */
  readonly output?: (name: string, values: readonly string[]) => void;
}

export interface EffectContext {
  secrets: EventSecrets;
  /** Named points inside an effect; crash tests stop the process at them. */
  checkpoint: (name: string) => Promise<void>;
  /** How far a long effect has come (the DEK re-encryption job); the CLI draws a progress bar from it. */
  progress: (report: EffectProgress) => void;
}

export interface EffectProgress {
  done: number;
  total: number;
  /** What is counted ("values"). */
  unit: string;
}

/** Runs the machine's effects; each one idempotent, since a crash may make it run again. */
export interface EffectRunner {
  run(name: EffectName, input: unknown, context: EffectContext): Promise<unknown>;
  /** Maps whatever an effect threw to a code and a message that holds no secret. */
  describeError(error: unknown): EffectError;
}
