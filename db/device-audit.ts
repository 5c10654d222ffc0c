import { createHmac } from 'node:crypto';
import { canonicalJson, GENESIS } from './audit-chain';

/**
 * The devices' audit trail as a hash chain, like the transition log's unkeyed chain
 * (db/audit-chain.ts): each entry's hash covers the previous entry's hash and the entry's own
 * content, so editing, deleting or reordering an entry breaks the chain there. The key is public:
 * the chain shows tampering by anyone who does not recompute it, not by someone who does.
 * Entries never hold a value of a secret, only what changed ("estPassword replaced").
 */
const KEY = Buffer.from('keyward/device-audit/v1', 'utf8');

export { GENESIS };

/** What changed in one audit entry: a closed list, so that no caller can put a value in it. */
export type DeviceAuditAction = 'created' | 'renamed' | 'estPassword replaced' | 'estPassword regenerated' | 'cmpSharedSecret replaced' | 'cmpSharedSecret regenerated' | 'deleted';

export interface DeviceAuditEntry {
  seq: number;
  deviceId: number;
  /** The device's name after the change (before it, for a deletion). */
  deviceName: string;
  actor: string;
  action: DeviceAuditAction;
  /** Words for a person, never a secret: e.g. the old and new name of a rename. */
  detail: string;
  at: string;
  prevHash: string;
  hash: string;
}

export function deviceAuditHash(prevHash: string, entry: Omit<DeviceAuditEntry, 'hash' | 'prevHash'>): string {
  const content = canonicalJson([entry.seq, entry.deviceId, entry.deviceName, entry.actor, entry.action, entry.detail, entry.at]);
  return createHmac('sha256', KEY).update(`keyward-device-audit-v1|${prevHash}|${content}`).digest('hex');
}

export interface DeviceAuditVerdict {
  ok: boolean;
  entries: number;
  /** The first entry that breaks the chain, in words. */
  firstBroken: { seq: number; message: string } | null;
}

/** Walks the entries in `seq` order from the first. */
export function verifyDeviceAudit(entries: readonly DeviceAuditEntry[]): DeviceAuditVerdict {
  let previous = GENESIS;
  let expected = 1;
  for (const entry of entries) {
    const broken = (message: string): DeviceAuditVerdict => ({ ok: false, entries: entries.length, firstBroken: { seq: entry.seq, message } });
    if (entry.seq !== expected) return broken(entry.seq > expected ? `entry ${expected} is missing (deleted?)` : `entry ${entry.seq} appears out of order`);
    if (entry.prevHash !== previous) return broken(`entry ${entry.seq} does not follow the entry before it`);
    if (deviceAuditHash(entry.prevHash, entry) !== entry.hash) return broken(`entry ${entry.seq} was altered: its content does not match its hash`);
    previous = entry.hash;
    expected += 1;
  }
  return { ok: true, entries: entries.length, firstBroken: null };
}

/** A row of the device_audit table (db/migrations/017_device_audit.ts). */
export interface DeviceAuditRow {
  seq: number | string;
  device_id: number | string;
  device_name: string;
  actor: string;
  action: string;
  detail: string;
  created_at: string;
  prev_hash: string;
  hash: string;
}

export function deviceAuditEntryOf(row: DeviceAuditRow): DeviceAuditEntry {
  return {
    seq: Number(row.seq),
    deviceId: Number(row.device_id),
    deviceName: row.device_name,
    actor: row.actor,
    action: row.action as DeviceAuditAction,
    detail: row.detail,
    at: row.created_at,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}
