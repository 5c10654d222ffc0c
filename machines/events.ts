import { isStorageType, StorageType } from '../hsm/storage-type';
import { KeywardError } from '../errors/keyward-error';
import type { StartupContext } from './startup-context';

/**
 * The lifecycle's public events (design §6). Payloads never carry secrets: passwords, PINs and
 * passphrases travel beside the event (see SECRETS_BY_EVENT) and never reach the snapshot or the log.
 * Every event carries `at`, the time the engine accepted it, so guards stay pure.
 */
export type HsmType = 'softhsm' | 'physical';

export type LifecycleEvent =
  | { type: 'BOOT'; at: string; startup: StartupContext }
  | { type: 'SELECT_STORAGE'; at: string; storageType: StorageType }
  | { type: 'SETUP_HSM'; at: string; hsmType: HsmType; modulePath: string; label: string; slot: number | null }
  | { type: 'CHOOSE_FRESH'; at: string }
  | { type: 'RESTORE_BACKUP'; at: string; path: string }
  | { type: 'GENERATE_TLS'; at: string; subjectAltNames: string[] }
  | { type: 'IMPORT_TLS_PKCS12'; at: string; path: string }
  | { type: 'IMPORT_TLS_FILES'; at: string; keyFile: string; certificateFile: string; chainFile: string | null }
  | { type: 'APPLY_TLS'; at: string }
  | { type: 'CANCEL_TLS'; at: string }
  | { type: 'SET_BACKUP_PASSWORD'; at: string }
  | { type: 'ADD_DEMO_DATA'; at: string }
  | { type: 'SKIP_DEMO_DATA'; at: string }
  | { type: 'CREATE_ADMIN'; at: string; username: string }
  | { type: 'SUBMIT_BACKUP_PASSWORD'; at: string }
  | { type: 'DECLARE_TOKEN_LOST'; at: string }
  | { type: 'ACKNOWLEDGE_LOG_BREAK'; at: string; revision: number };

export type LifecycleEventType = LifecycleEvent['type'];

export const EVENT_TYPES: readonly LifecycleEventType[] = [
  'BOOT',
  'SELECT_STORAGE',
  'SETUP_HSM',
  'CHOOSE_FRESH',
  'RESTORE_BACKUP',
  'GENERATE_TLS',
  'IMPORT_TLS_PKCS12',
  'IMPORT_TLS_FILES',
  'APPLY_TLS',
  'CANCEL_TLS',
  'SET_BACKUP_PASSWORD',
  'ADD_DEMO_DATA',
  'SKIP_DEMO_DATA',
  'CREATE_ADMIN',
  'SUBMIT_BACKUP_PASSWORD',
  'DECLARE_TOKEN_LOST',
  'ACKNOWLEDGE_LOG_BREAK',
];

/** The secrets each event needs, by name; they come from stdin, a file or a form field. */
export const SECRETS_BY_EVENT: Partial<Record<LifecycleEventType, readonly string[]>> = {
  SETUP_HSM: ['pin', 'soPin'],
  RESTORE_BACKUP: ['passphrase'],
  IMPORT_TLS_PKCS12: ['password'],
  SET_BACKUP_PASSWORD: ['password'],
  CREATE_ADMIN: ['password'],
  SUBMIT_BACKUP_PASSWORD: ['password'],
};

/** SO PIN is needed only to initialize a new SoftHSM token; a physical HSM's token is never initialized by keyward. */
export function requiredSecrets(event: LifecycleEvent): string[] {
  if (event.type === 'SETUP_HSM') return event.hsmType === 'softhsm' ? ['pin', 'soPin'] : ['pin'];
  return [...(SECRETS_BY_EVENT[event.type] ?? [])];
}

export class EventPayloadError extends KeywardError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('INVALID_PAYLOAD', message);
    this.name = 'EventPayloadError';
  }
}

const MAX_PATH = 4096;
const TOKEN_LABEL = /^[\x20-\x7e]{1,32}$/;
const USERNAME = /^[A-Za-z0-9._@-]{1,150}$/;

/**
 * Checks an event that arrives from outside (CLI, web, script) and returns it typed, or throws an
 * EventPayloadError naming the field. BOOT is not accepted from outside: start-up probes and sends it.
 */
export function parseExternalEvent(type: string, payload: Record<string, unknown>, at: string): LifecycleEvent {
  const text = (field: string, max = MAX_PATH): string => {
    const value = payload[field];
    if (typeof value !== 'string' || value.trim() === '') throw new EventPayloadError(field, `${field} is required`);
    if (value.length > max) throw new EventPayloadError(field, `${field} is longer than ${max} characters`);
    if (/[\u0000-\u001f]/.test(value)) throw new EventPayloadError(field, `${field} contains control characters`);
    return value.trim();
  };
  const secretsInPayload = Object.keys(payload).filter((key) => /pin|password|passphrase|secret/i.test(key));
  if (secretsInPayload.length > 0) {
    throw new EventPayloadError(secretsInPayload[0]!, `${secretsInPayload.join(', ')} must not be in the payload: pass secrets on stdin or in a file`);
  }
  switch (type) {
    case 'SELECT_STORAGE': {
      const storageType = payload.storageType;
      if (!isStorageType(storageType)) throw new EventPayloadError('storageType', 'storageType must be software, softhsm or physical_hsm');
      return { type, at, storageType };
    }
    case 'SETUP_HSM': {
      const hsmType = payload.hsmType;
      if (hsmType !== 'softhsm' && hsmType !== 'physical') throw new EventPayloadError('hsmType', 'hsmType must be softhsm or physical');
      const modulePath = text('modulePath');
      if (!modulePath.startsWith('/')) throw new EventPayloadError('modulePath', 'modulePath must be an absolute path to a PKCS#11 library');
      const label = text('label', 32);
      if (!TOKEN_LABEL.test(label)) throw new EventPayloadError('label', 'label must be 1–32 printable ASCII characters');
      let slot: number | null = null;
      if (payload.slot !== undefined && payload.slot !== null && payload.slot !== '') {
        slot = Number(payload.slot);
        if (!Number.isSafeInteger(slot) || slot < 0) throw new EventPayloadError('slot', 'slot must be a non-negative integer');
      }
      return { type, at, hsmType, modulePath, label, slot };
    }
    case 'GENERATE_TLS': {
      const raw = payload.subjectAltNames;
      const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(/[\s,]+/) : [];
      const subjectAltNames = list.map((s) => String(s).trim()).filter(Boolean);
      if (subjectAltNames.length === 0) throw new EventPayloadError('subjectAltNames', 'at least one subject alternative name is required');
      if (subjectAltNames.length > 100 || subjectAltNames.some((s) => s.length > 253)) throw new EventPayloadError('subjectAltNames', 'too many or too long subject alternative names');
      return { type, at, subjectAltNames };
    }
    case 'IMPORT_TLS_PKCS12':
    case 'RESTORE_BACKUP':
      return { type, at, path: text('path') };
    case 'IMPORT_TLS_FILES':
      return { type, at, keyFile: text('keyFile'), certificateFile: text('certificateFile'), chainFile: payload.chainFile ? text('chainFile') : null };
    case 'CREATE_ADMIN': {
      const username = text('username', 150);
      if (!USERNAME.test(username)) throw new EventPayloadError('username', 'username may hold letters, digits and . _ @ - only');
      return { type, at, username };
    }
    case 'ACKNOWLEDGE_LOG_BREAK': {
      const revision = Number(payload.revision);
      if (!Number.isSafeInteger(revision) || revision < 1) throw new EventPayloadError('revision', 'revision must be the broken row `keyward audit verify` reported');
      return { type, at, revision };
    }
    case 'CHOOSE_FRESH':
    case 'APPLY_TLS':
    case 'CANCEL_TLS':
    case 'SET_BACKUP_PASSWORD':
    case 'ADD_DEMO_DATA':
    case 'SKIP_DEMO_DATA':
    case 'SUBMIT_BACKUP_PASSWORD':
    case 'DECLARE_TOKEN_LOST':
      return { type, at };
    case 'BOOT':
      throw new EventPayloadError('type', 'BOOT is sent by start-up with a probed context: use `keyward boot`');
    default:
      throw new EventPayloadError('type', `unknown event ${JSON.stringify(type)}; events: ${EVENT_TYPES.join(', ')}`);
  }
}

/** The payload as it may be logged: everything but `type` and `at` (secrets are never in it). */
export function loggablePayload(event: { type: string } & Record<string, unknown>): Record<string, unknown> {
  const { type: _type, at: _at, ...rest } = event;
  return rest;
}
