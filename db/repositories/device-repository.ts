import type { Knex } from 'knex';
import { now } from '../clock';
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

/** Devices with their EST password and CMP shared secret; callers see plaintext only. */
export class DeviceRepository {
  constructor(
    private readonly db: Knex,
    private readonly secrets: SecretFields,
  ) {}

  async create(device: NewDevice): Promise<number> {
    const name = requireName('name', device.name);
    const estPassword = optionalSecret('estPassword', device.estPassword, 128);
    const cmpSharedSecret = optionalSecret('cmpSharedSecret', device.cmpSharedSecret, 128);
    return this.db.transaction(async (trx) => {
      if (await trx('devices').where({ name }).first('id')) throw new ValidationError('name', `a device named "${name}" exists already`);
      const sealed = await this.secrets.seal(trx, 'devices', { est_password: estPassword, cmp_shared_secret: cmpSharedSecret });
      return returnedId(
        await trx('devices')
          .insert({ name, ...sealed, created_at: now() })
          .returning('id'),
      );
    });
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

function summary(row: DeviceRow): DeviceSummary {
  return {
    id: Number(row.id),
    name: String(row.name),
    hasEstPassword: row.est_password !== null,
    hasCmpSharedSecret: row.cmp_shared_secret !== null,
    createdAt: String(row.created_at),
  };
}
