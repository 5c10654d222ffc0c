import type { Knex } from 'knex';
import { now } from '../clock';
import { type DeviceAuditEntry, deviceAuditEntryOf, deviceAuditHash, type DeviceAuditRow, GENESIS, verifyDeviceAudit, type DeviceAuditVerdict } from '../device-audit';
import type { SecretFields } from '../secret-fields';
import { optionalSecret, requireName, ValidationError } from '../validation';
import { type DeviceRow, returnedId } from '../rows';

export interface NewDevice {
  name: string;
  estPassword?: string | null;
  cmpSharedSecret?: string | null;
}

export interface DeviceSummary {
  id: number;
  name: string;
  hasEstPassword: boolean;
  hasCmpSharedSecret: boolean;
  createdAt: string;
}

export interface Device extends DeviceSummary {
  estPassword: string | null;
  cmpSharedSecret: string | null;
}

const SECRET_COLUMNS = ['est_password', 'cmp_shared_secret'] as const;

/** A device's two secrets by their public names (the audit entries' and the forms' names). */
export type DeviceSecretName = 'estPassword' | 'cmpSharedSecret';
const COLUMN_OF: Record<DeviceSecretName, (typeof SECRET_COLUMNS)[number]> = { estPassword: 'est_password', cmpSharedSecret: 'cmp_shared_secret' };
export const MAX_DEVICE_SECRET = 128;

/** Devices with their EST password and CMP shared secret; callers see plaintext only. */
export class DeviceRepository {
  constructor(
    private readonly db: Knex,
    private readonly secrets: SecretFields,
  ) {}

  /** `actor`: who, for the audit entry ("web:alice", "cli"); absent for data that is not an operator's (demo data). */
  async create(device: NewDevice, actor?: string): Promise<number> {
    const name = requireName('name', device.name);
    const estPassword = optionalSecret('estPassword', device.estPassword, MAX_DEVICE_SECRET);
    const cmpSharedSecret = optionalSecret('cmpSharedSecret', device.cmpSharedSecret, MAX_DEVICE_SECRET);
    return this.changing(async (trx) => {
      await this.refuseTakenName(trx, name);
      const sealed = await this.secrets.seal(trx, 'devices', { est_password: estPassword, cmp_shared_secret: cmpSharedSecret });
      const id = returnedId(
        await trx('devices')
          .insert({ name, ...sealed, created_at: now() })
          .returning('id'),
      );
      if (actor) await this.audit(trx, { deviceId: id, deviceName: name, actor, action: 'created', detail: '' });
      return id;
    });
  }

  /** Renames a device; the same name again changes nothing and writes no entry. */
  async rename(id: number, newName: string, actor: string): Promise<void> {
    const name = requireName('name', newName);
    await this.changing(async (trx) => {
      const row = await this.existing(trx, id);
      if (row.name === name) return;
      await this.refuseTakenName(trx, name, id);
      await trx('devices').where({ id }).update({ name });
      await this.audit(trx, { deviceId: id, deviceName: name, actor, action: 'renamed', detail: `from “${row.name}” to “${name}”` });
    });
  }

  /** Replaces one secret with a value typed by the operator or made by keyward (`how` says which, for the entry). */
  async replaceSecret(id: number, which: DeviceSecretName, value: string, how: 'replaced' | 'regenerated', actor: string): Promise<void> {
    const secret = optionalSecret(which, value, MAX_DEVICE_SECRET);
    if (secret === null) throw new ValidationError(which, `${which} is required`);
    const column = COLUMN_OF[which];
    await this.changing(async (trx) => {
      const row = await this.existing(trx, id);
      const sealed = await this.secrets.seal(trx, 'devices', { [column]: secret } as Record<typeof column, string>);
      await trx('devices').where({ id }).update(sealed);
      await this.audit(trx, { deviceId: id, deviceName: row.name, actor, action: `${which} ${how}`, detail: '' });
    });
  }

  async delete(id: number, actor: string): Promise<void> {
    await this.changing(async (trx) => {
      const row = await this.existing(trx, id);
      await trx('devices').where({ id }).delete();
      await this.audit(trx, { deviceId: id, deviceName: row.name, actor, action: 'deleted', detail: '' });
    });
  }

  /** The audit entries, newest first: of one device, or of all (deleted devices' included). */
  async auditEntries(options: { deviceId?: number; limit?: number } = {}): Promise<DeviceAuditEntry[]> {
    let query = this.db<DeviceAuditRow>('device_audit').orderBy('seq', 'desc');
    if (options.deviceId !== undefined) query = query.where({ device_id: options.deviceId });
    if (options.limit !== undefined) query = query.limit(options.limit);
    return (await query.select()).map(deviceAuditEntryOf);
  }

  /** The whole audit chain checked, or null on a database whose schema predates it (before migration 017). */
  async verifyAuditIfPresent(): Promise<DeviceAuditVerdict | null> {
    return (await this.db.schema.hasTable('device_audit')) ? this.verifyAudit() : null;
  }

  /** Checks the whole audit chain (docs/audit-log.md, "Device audit"). */
  async verifyAudit(): Promise<DeviceAuditVerdict> {
    const rows = await this.db<DeviceAuditRow>('device_audit').orderBy('seq').select();
    return verifyDeviceAudit(rows.map(deviceAuditEntryOf));
  }

  private async existing(trx: Knex, id: number): Promise<Pick<DeviceRow, 'id' | 'name'>> {
    const row = await trx<DeviceRow>('devices').where({ id }).first('id', 'name');
    if (!row) throw new ValidationError('device', 'There is no such device (it may have been deleted meanwhile).');
    return row;
  }

  private async refuseTakenName(trx: Knex, name: string, except?: number): Promise<void> {
    const taken = await trx<DeviceRow>('devices').where({ name }).first('id');
    if (taken && Number(taken.id) !== except) throw new ValidationError('name', `a device named "${name}" exists already`);
  }

  /** Appends an entry after the chain's head, in the change's transaction. */
  private async audit(trx: Knex, entry: Omit<DeviceAuditEntry, 'seq' | 'at' | 'prevHash' | 'hash'>): Promise<void> {
    const head = await trx<DeviceAuditRow>('device_audit').orderBy('seq', 'desc').first('seq', 'hash');
    const full = { ...entry, seq: head ? Number(head.seq) + 1 : 1, at: now(), actor: entry.actor.slice(0, 200) };
    const prevHash = head?.hash ?? GENESIS;
    await trx('device_audit').insert({
      seq: full.seq,
      device_id: full.deviceId,
      device_name: full.deviceName,
      actor: full.actor,
      action: full.action,
      detail: full.detail,
      created_at: full.at,
      prev_hash: prevHash,
      hash: deviceAuditHash(prevHash, full),
    });
  }

  /**
   * A change and its audit entry in one transaction. Two writers that extend the chain at once
   * collide on the entry's `seq` (a unique key): the loser runs again on the new head.
   */
  private async changing<T>(change: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction(change);
      } catch (error) {
        if (attempt >= 5 || !isUniqueViolation(error)) throw error;
      }
    }
  }

  async list(): Promise<DeviceSummary[]> {
    const rows = await this.db<DeviceRow>('devices').orderBy('id').select('id', 'name', 'est_password', 'cmp_shared_secret', 'created_at');
    return rows.map(summary);
  }

  async get(id: number): Promise<Device | null> {
    const row = await this.db<DeviceRow>('devices').where({ id }).first();
    if (!row) return null;
    const opened = await this.secrets.open('devices', row, SECRET_COLUMNS);
    return { ...summary(row), estPassword: opened.est_password, cmpSharedSecret: opened.cmp_shared_secret };
  }

  async findByName(name: string): Promise<Device | null> {
    const row = await this.db<DeviceRow>('devices').where({ name }).first('id');
    return row ? this.get(Number(row.id)) : null;
  }
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '23505' || (typeof code === 'string' && code.startsWith('SQLITE_CONSTRAINT'));
}

function summary(row: DeviceRow): DeviceSummary {
  return {
    id: Number(row.id),
    name: String(row.name),
    hasEstPassword: row.est_password !== null,
    hasCmpSharedSecret: row.cmp_shared_secret !== null,
    createdAt: String(row.created_at),
  };
}
