/**
 * The rotation policy (docs/lifecycle.md "Key rotation"): from the keyset as the database records it,
 * the time and the configured limits, which key is due for rotation and why. Pure: no I/O, no clock;
 * the status page, /metrics and the auto-rotation timer of `keyward start` all ask it the same way.
 */

/** NIST SP 800-38D: at most 2^32 encryptions under one GCM key with random 96-bit nonces. */
export const GCM_BUDGET = 2 ** 32;
/** The default limit: half the budget, so a rotation has room to finish long before the hard stop. */
export const DEFAULT_DEK_MAX_ENCRYPTIONS = 2 ** 31;
export const DEFAULT_ROTATION_CHECK_SECONDS = 600;
const DAY_MS = 86_400_000;

export interface RotationPolicyConfig {
  /** Encryptions under the primary DEK after which it is due (1 … 2^32). */
  dekMaxEncryptions: number;
  /** Age of the primary DEK, in days, after which it is due; null: no age limit. */
  dekMaxAgeDays: number | null;
  /** Age of the KEK, in days, after which it is due; null: no age limit. */
  kekMaxAgeDays: number | null;
  /** `keyward start` rotates a due key by itself. */
  autoRotate: boolean;
  /** How often `keyward start` asks the policy while operational. */
  checkIntervalSeconds: number;
}

export const DEFAULT_ROTATION_POLICY: RotationPolicyConfig = {
  dekMaxEncryptions: DEFAULT_DEK_MAX_ENCRYPTIONS,
  dekMaxAgeDays: null,
  kekMaxAgeDays: null,
  autoRotate: false,
  checkIntervalSeconds: DEFAULT_ROTATION_CHECK_SECONDS,
};

/** What the policy reads of one DEK's record (hsm/key-hierarchy.ts KeyMaterialRecord has these). */
export interface PolicyKeyRecord {
  dekKeyId: string;
  state: 'pending' | 'primary' | 'active' | 'retired';
  gcmEncryptions: number;
  createdAt: string;
  kekCreatedAt: string;
  wrapped: { kek: { label: string; id: string } } | null;
}

export type RotationKey = 'dek' | 'kek';
export type RotationReason = 'encryptions' | 'age';

export interface RotationDue {
  key: RotationKey;
  reason: RotationReason;
  /** The DEK's key id, or the KEK's CKA_ID (hex; '' for a KEK recorded without one). */
  keyId: string;
  /** Encryptions, or age in seconds. */
  value: number;
  /** The limit it passed, in the same unit. */
  limit: number;
  /** A sentence for the status page and the log. */
  message: string;
}

/** Every (key, reason) pair the policy can report: /metrics shows each one, 0 or 1. */
export const ROTATION_CHECKS: ReadonlyArray<{ key: RotationKey; reason: RotationReason }> = [
  { key: 'dek', reason: 'encryptions' },
  { key: 'dek', reason: 'age' },
  { key: 'kek', reason: 'age' },
];

/** Seconds between an ISO time and now; 0 for a time that cannot be read or lies ahead. */
export function ageSeconds(iso: string, now: Date): number {
  const at = Date.parse(iso);
  return Number.isFinite(at) ? Math.max(0, (now.getTime() - at) / 1000) : 0;
}

/** A duration for people: "3 days", "5 hours", "12 minutes", "40 seconds". */
export function describeAge(seconds: number): string {
  const unit = (value: number, name: string) => `${value} ${name}${value === 1 ? '' : 's'}`;
  if (seconds >= 2 * 86_400) return unit(Math.floor(seconds / 86_400), 'day');
  if (seconds >= 2 * 3600) return unit(Math.floor(seconds / 3600), 'hour');
  if (seconds >= 120) return unit(Math.floor(seconds / 60), 'minute');
  return unit(Math.floor(seconds), 'second');
}

const days = (value: number) => `${Number(value.toPrecision(6))} day${value === 1 ? '' : 's'}`;
const count = (value: number) => value.toLocaleString('en');

/**
 * The rotations due now. The DEK limits apply to the primary DEK (the one new values are written
 * with: an older DEK of an unfinished rotation is on its way out already); the KEK's age is the one
 * its wraps record. An empty keyset (software storage, or before the first DEK) has nothing due.
 */
export function rotationsDue(keyset: readonly PolicyKeyRecord[], now: Date, config: RotationPolicyConfig): RotationDue[] {
  const primary = keyset.find((record) => record.state === 'primary');
  if (!primary) return [];
  const due: RotationDue[] = [];
  if (primary.gcmEncryptions >= config.dekMaxEncryptions) {
    due.push({
      key: 'dek',
      reason: 'encryptions',
      keyId: primary.dekKeyId,
      value: primary.gcmEncryptions,
      limit: config.dekMaxEncryptions,
      message: `DEK ${primary.dekKeyId} has encrypted ${count(primary.gcmEncryptions)} values, at or over the limit of ${count(config.dekMaxEncryptions)} (the GCM budget is ${count(GCM_BUDGET)}): rotate the DEK`,
    });
  }
  const dekAge = ageSeconds(primary.createdAt, now);
  if (config.dekMaxAgeDays !== null && dekAge * 1000 >= config.dekMaxAgeDays * DAY_MS) {
    due.push({
      key: 'dek',
      reason: 'age',
      keyId: primary.dekKeyId,
      value: dekAge,
      limit: config.dekMaxAgeDays * 86_400,
      message: `DEK ${primary.dekKeyId} is ${describeAge(dekAge)} old, over the limit of ${days(config.dekMaxAgeDays)}: rotate the DEK`,
    });
  }
  const kekAge = ageSeconds(primary.kekCreatedAt, now);
  if (config.kekMaxAgeDays !== null && primary.wrapped !== null && kekAge * 1000 >= config.kekMaxAgeDays * DAY_MS) {
    const kekId = primary.wrapped.kek.id;
    due.push({
      key: 'kek',
      reason: 'age',
      keyId: kekId,
      value: kekAge,
      limit: config.kekMaxAgeDays * 86_400,
      message: `the KEK ${kekId ? `(CKA_ID ${kekId}) ` : ''}is ${describeAge(kekAge)} old, over the limit of ${days(config.kekMaxAgeDays)}: rotate the KEK`,
    });
  }
  return due;
}

/**
 * The one rotation to start for what is due: the KEK first (it is quick, and a DEK rotation wraps
 * its new DEK under whatever KEK is current), then the DEK; null when nothing is due.
 */
export function nextRotation(due: readonly RotationDue[]): RotationKey | null {
  if (due.some((item) => item.key === 'kek')) return 'kek';
  if (due.some((item) => item.key === 'dek')) return 'dek';
  return null;
}

/**
 * A DEK due by its encryptions only because its own rotation wrote every stored value under it: the
 * limit is below the number of values, and rotating again would make the next DEK due at once, for
 * ever. True when the encryptions made since that job (writes, not re-encryptions) are under the limit.
 */
export function dueOnlyFromItsRotation(
  due: readonly RotationDue[],
  primary: PolicyKeyRecord | undefined,
  job: (ReencryptionProgress & { targetKeyId: string }) | null,
  config: RotationPolicyConfig,
): boolean {
  const dek = due.filter((item) => item.key === 'dek');
  if (!primary || !job || job.targetKeyId !== primary.dekKeyId || dek.length === 0 || dek.some((item) => item.reason !== 'encryptions')) return false;
  return primary.gcmEncryptions - job.valuesDone < config.dekMaxEncryptions;
}

/** What the re-encryption job reports (db/dek-reencryption.ts ReencryptionStatus). */
export interface ReencryptionProgress {
  valuesDone: number;
  valuesTotal: number;
  startedAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

/** Values left and the rate so far (values per second between the job's start and its last batch). */
export function reencryptionRate(status: ReencryptionProgress): { valuesLeft: number; valuesPerSecond: number; fraction: number } {
  const valuesLeft = status.finishedAt !== null ? 0 : Math.max(0, status.valuesTotal - status.valuesDone);
  const seconds = (Date.parse(status.updatedAt) - Date.parse(status.startedAt)) / 1000;
  const valuesPerSecond = Number.isFinite(seconds) && seconds > 0 ? status.valuesDone / seconds : 0;
  const fraction = status.finishedAt !== null ? 1 : status.valuesTotal > 0 ? Math.min(1, status.valuesDone / status.valuesTotal) : 0;
  return { valuesLeft, valuesPerSecond, fraction };
}
