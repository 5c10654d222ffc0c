import { z } from 'zod';
import { isStorageType, StorageType } from '../hsm/storage-type';
import { KeywardError } from '../errors/keyward-error';
import type { StartupContext } from './startup-context';

/**
 * The lifecycle's public events (scripts rely on their names), one schema entry each: the entry gives the event's
 * payload type, its parser (CLI, web, scripts all go through parseExternalEvent), its place in
 * EVENT_TYPES and the names of the secrets that travel beside it. Adding an event is one entry here
 * and the machine's transition.
 *
 * Payloads never carry secrets: passwords, PINs and passphrases travel beside the event and never
 * reach the snapshot or the log. Every event carries `at`, the time the engine accepted it, so guards
 * stay pure. The schemas are pure (no I/O): the machine imports this file.
 */
export type HsmType = 'softhsm' | 'physical';
export type PasswordChangeAuthority = 'backup_password' | 'admin';

const MAX_PATH = 4096;
const TOKEN_LABEL = /^[\x20-\x7e]{1,32}$/;
const USERNAME = /^[A-Za-z0-9._@-]{1,150}$/;

/** Any value, absent included: each field's own check says what is required (zod's message would not). */
const anyValue = z.unknown().optional();

/** Refuses with the message given: the first issue becomes the EventPayloadError shown to the operator. */
function fail(ctx: z.RefinementCtx, message: string): never {
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
}

/** A required line of text (a path, a label, a name): trimmed, bounded, without control characters. */
const text = (field: string, max = MAX_PATH) =>
  anyValue.transform((value, ctx): string => {
    if (typeof value !== 'string' || value.trim() === '') return fail(ctx, `${field} is required`);
    if (value.length > max) return fail(ctx, `${field} is longer than ${max} characters`);
    if (/[\u0000-\u001f]/.test(value)) return fail(ctx, `${field} contains control characters`);
    return value.trim();
  });

const oneOf = <T extends string>(accepts: (value: unknown) => value is T, message: string) => anyValue.transform((value, ctx): T => (accepts(value) ? value : fail(ctx, message)));

const isHsmType = (value: unknown): value is HsmType => value === 'softhsm' || value === 'physical';

/** `''`, null and absent all mean "no slot": the token is then found by label. */
const slot = anyValue.transform((value, ctx): number | null => {
  if (value === undefined || value === null || value === '') return null;
  const number = Number(value);
  return Number.isSafeInteger(number) && number >= 0 ? number : fail(ctx, 'slot must be a non-negative integer');
});

/** A list or one string separated by commas or white space (as a form field sends it). */
const subjectAltNames = anyValue.transform((raw, ctx): string[] => {
  const list: unknown[] = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(/[\s,]+/) : [];
  const names = list.map((s) => String(s).trim()).filter(Boolean);
  if (names.length === 0) return fail(ctx, 'at least one subject alternative name is required');
  if (names.length > 100 || names.some((s) => s.length > 253)) return fail(ctx, 'too many or too long subject alternative names');
  return names;
});

/** A whole number within bounds, from JSON or a form field. */
const count = (field: string, min: number, max: number) =>
  anyValue.transform((value, ctx): number => {
    const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    return typeof number === 'number' && Number.isSafeInteger(number) && number >= min && number <= max ? number : fail(ctx, `${field} must be a whole number from ${min} to ${max}`);
  });

interface EventDefinition {
  /** The payload's fields (`type` and `at` aside); unknown fields are dropped. */
  payload: z.ZodObject;
  /** The secrets the event may take, by name; they come from stdin, a file or a form field. */
  secrets: readonly string[];
  /** Fewer secrets for some payloads (all of `secrets` when absent). */
  requires?: (payload: never) => readonly string[];
  /** Why the event is not accepted from outside (CLI, web, scripts), when it is not. */
  internal?: string;
}

const NO_PAYLOAD = z.object({});

/** The one table of events, in the order `inspect` lists the events accepted. */
export const EVENT_SCHEMAS = {
  BOOT: {
    payload: z.object({ startup: z.custom<StartupContext>() }),
    secrets: [],
    internal: 'BOOT is sent by start-up with a probed context: use `keyward boot`',
  },
  SELECT_STORAGE: {
    payload: z.object({ storageType: oneOf<StorageType>(isStorageType, 'storageType must be software, softhsm or physical_hsm') }),
    secrets: [],
  },
  SETUP_HSM: {
    payload: z.object({
      hsmType: oneOf(isHsmType, 'hsmType must be softhsm or physical'),
      modulePath: text('modulePath').refine((path) => path.startsWith('/'), 'modulePath must be an absolute path to a PKCS#11 library'),
      label: text('label', 32).refine((label) => TOKEN_LABEL.test(label), 'label must be 1–32 printable ASCII characters'),
      slot,
    }),
    secrets: ['pin', 'soPin'],
    // The SO PIN only initializes a new SoftHSM token; a physical HSM's token is never initialized by keyward.
    requires: (payload: { hsmType: HsmType }) => (payload.hsmType === 'softhsm' ? ['pin', 'soPin'] : ['pin']),
  },
  CHOOSE_FRESH: { payload: NO_PAYLOAD, secrets: [] },
  RESTORE_BACKUP: { payload: z.object({ path: text('path') }), secrets: ['passphrase'] },
  GENERATE_TLS: { payload: z.object({ subjectAltNames }), secrets: [] },
  IMPORT_TLS_PKCS12: { payload: z.object({ path: text('path') }), secrets: ['password'] },
  IMPORT_TLS_FILES: {
    payload: z.object({
      keyFile: text('keyFile'),
      certificateFile: text('certificateFile'),
      // Any falsy value (absent, null, '') means no chain file.
      chainFile: anyValue.transform((value, ctx): string | null => {
        if (!value) return null;
        const parsed = text('chainFile').safeParse(value);
        return parsed.success ? parsed.data : fail(ctx, parsed.error.issues[0]!.message);
      }),
    }),
    secrets: [],
  },
  APPLY_TLS: { payload: NO_PAYLOAD, secrets: [] },
  CANCEL_TLS: { payload: NO_PAYLOAD, secrets: [] },
  SET_BACKUP_PASSWORD: { payload: NO_PAYLOAD, secrets: ['password'] },
  ADD_DEMO_DATA: { payload: NO_PAYLOAD, secrets: [] },
  SKIP_DEMO_DATA: { payload: NO_PAYLOAD, secrets: [] },
  CREATE_ADMIN: {
    payload: z.object({ username: text('username', 150).refine((name) => USERNAME.test(name), 'username may hold letters, digits and . _ @ - only') }),
    secrets: ['password'],
  },
  SUBMIT_BACKUP_PASSWORD: { payload: NO_PAYLOAD, secrets: ['password'] },
  // Recovery shares (docs/lifecycle.md "Recovery shares"): made in the wizard or later; one share per event in auto-restore.
  CREATE_RECOVERY_SHARES: {
    payload: z
      .object({ shares: count('shares', 2, 16), threshold: count('threshold', 2, 16) })
      .refine((payload) => payload.threshold <= payload.shares, { message: 'threshold must not exceed the number of shares', path: ['threshold'] }),
    secrets: [],
  },
  SKIP_RECOVERY_SHARES: { payload: NO_PAYLOAD, secrets: [] },
  SUBMIT_RECOVERY_SHARE: { payload: NO_PAYLOAD, secrets: ['share'] },
  // The key lifecycle (docs/lifecycle.md "Key rotation"): operational only, the server keeps serving.
  ROTATE_KEK: { payload: NO_PAYLOAD, secrets: [] },
  ROTATE_DEK: { payload: NO_PAYLOAD, secrets: [] },
  CHANGE_BACKUP_PASSWORD: {
    payload: z.object({
      // Who vouches for the change: whoever knows the current backup password, or an administrator
      // (their own password) while the keyset is loaded.
      authorizeWith: anyValue.transform((value, ctx): PasswordChangeAuthority => {
        if (value === undefined || value === null || value === '') return 'backup_password';
        return value === 'backup_password' || value === 'admin' ? value : fail(ctx, 'authorizeWith must be backup_password or admin');
      }),
      username: anyValue.transform((value, ctx): string | null => {
        if (value === undefined || value === null || value === '') return null;
        return typeof value === 'string' && USERNAME.test(value) ? value : fail(ctx, 'username may hold letters, digits and . _ @ - only');
      }),
    }),
    secrets: ['password', 'currentPassword', 'adminPassword'],
    requires: (payload: { authorizeWith: PasswordChangeAuthority }) => (payload.authorizeWith === 'admin' ? ['password', 'adminPassword'] : ['password', 'currentPassword']),
  },
  CHANGE_TOKEN_PIN: { payload: NO_PAYLOAD, secrets: ['pin'] },
  // A second KEK in another token (docs/lifecycle.md "A second KEK"): operational only.
  ADD_SECOND_KEK: {
    payload: z.object({
      modulePath: text('modulePath').refine((path) => path.startsWith('/'), 'modulePath must be an absolute path to a PKCS#11 library'),
      label: text('label', 32).refine((label) => TOKEN_LABEL.test(label), 'label must be 1–32 printable ASCII characters'),
    }),
    secrets: ['pin'],
  },
  REMOVE_SECOND_KEK: { payload: NO_PAYLOAD, secrets: [] },
  DECLARE_TOKEN_LOST: { payload: NO_PAYLOAD, secrets: [] },
  // The wizard's previous step, until the first key is made (a page's Back button).
  BACK: { payload: NO_PAYLOAD, secrets: [] },
  ACKNOWLEDGE_LOG_BREAK: {
    payload: z.object({
      revision: anyValue.transform((value, ctx): number => {
        const revision = Number(value);
        return Number.isSafeInteger(revision) && revision >= 1 ? revision : fail(ctx, 'revision must be the broken row `keyward audit verify` reported');
      }),
    }),
    secrets: [],
  },
} as const satisfies Record<string, EventDefinition>;

type Schemas = typeof EVENT_SCHEMAS;
export type LifecycleEventType = keyof Schemas;

export type LifecycleEvent = {
  [K in LifecycleEventType]: { type: K; at: string } & z.output<Schemas[K]['payload']>;
}[LifecycleEventType];

export const EVENT_TYPES = Object.keys(EVENT_SCHEMAS) as readonly LifecycleEventType[];

/** The events an operator, a page or a script may send (all but BOOT). */
export const EXTERNAL_EVENT_TYPES: readonly LifecycleEventType[] = EVENT_TYPES.filter((type) => !('internal' in EVENT_SCHEMAS[type]));

/** The secrets each event may take, by name (derived from the schemas). */
export const SECRETS_BY_EVENT: Partial<Record<LifecycleEventType, readonly string[]>> = Object.fromEntries(
  EVENT_TYPES.filter((type) => EVENT_SCHEMAS[type].secrets.length > 0).map((type) => [type, EVENT_SCHEMAS[type].secrets]),
);

/** The payload fields an event takes (what a form or `--payload` may fill in). */
export function payloadFields(type: LifecycleEventType): string[] {
  return Object.keys(EVENT_SCHEMAS[type].payload.shape);
}

export function isLifecycleEventType(type: string): type is LifecycleEventType {
  return Object.hasOwn(EVENT_SCHEMAS, type);
}

/** The secrets this event needs beside it. */
export function requiredSecrets(event: LifecycleEvent): string[] {
  const definition: EventDefinition = EVENT_SCHEMAS[event.type];
  return [...(definition.requires ? definition.requires(event as never) : definition.secrets)];
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

/** A field name that looks like a secret: such a value belongs beside the event, not in it. */
const SECRET_FIELD = /pin|password|passphrase|secret/i;

/**
 * Checks an event that arrives from outside (CLI, web, script) and returns it typed, or throws an
 * EventPayloadError naming the field. BOOT is not accepted from outside: start-up probes and sends it.
 */
export function parseExternalEvent(type: string, payload: Record<string, unknown>, at: string): LifecycleEvent {
  const secretsInPayload = Object.keys(payload).filter((key) => SECRET_FIELD.test(key));
  if (secretsInPayload.length > 0) {
    throw new EventPayloadError(secretsInPayload[0]!, `${secretsInPayload.join(', ')} must not be in the payload: pass secrets on stdin or in a file`);
  }
  if (!isLifecycleEventType(type)) throw new EventPayloadError('type', `unknown event ${JSON.stringify(type)}; events: ${EVENT_TYPES.join(', ')}`);
  const definition: EventDefinition = EVENT_SCHEMAS[type];
  if (definition.internal) throw new EventPayloadError('type', definition.internal);
  const parsed = definition.payload.safeParse(payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new EventPayloadError(String(issue.path[0] ?? 'type'), issue.message);
  }
  return { type, at, ...parsed.data } as LifecycleEvent;
}

/**
 * Refuses secrets that do not fit the event: one it needs is missing or empty, or one it does not
 * take is given. The names in the messages come from the schema entry.
 */
export function checkSecrets(event: LifecycleEvent, secrets: Readonly<Record<string, string>>): void {
  const required = requiredSecrets(event);
  const missing = required.filter((name) => !Object.hasOwn(secrets, name) || secrets[name] === '');
  if (missing.length > 0) throw new EventPayloadError(missing[0]!, `${event.type} needs the secret(s) ${missing.join(', ')} (on stdin or in a file, never as an argument)`);
  const unknown = Object.keys(secrets).filter((name) => !required.includes(name));
  if (unknown.length > 0) throw new EventPayloadError(unknown[0]!, `${event.type} takes no secret named ${unknown.join(', ')}`);
}

/**
 * A form's fields split the schema's way (the web's parser): the event's payload fields into the
 * payload, its secrets beside it. `names` gives the form's field name where it differs from the
 * schema's; a secret left empty is left out, so the refusal names it as missing.
 */
export function eventFromForm(
  type: LifecycleEventType,
  form: (name: string) => string,
  names: Readonly<Record<string, string>> = {},
): { payload: Record<string, string>; secrets: Record<string, string> } {
  const read = (name: string) => form(names[name] ?? name);
  const payload = Object.fromEntries(payloadFields(type).map((name) => [name, read(name)]));
  const secrets = Object.fromEntries(EVENT_SCHEMAS[type].secrets.map((name): [string, string] => [name, read(name)]).filter(([, value]) => value !== ''));
  return { payload, secrets };
}

/** The payload as it may be logged: everything but `type` and `at` (secrets are never in it). */
export function loggablePayload(event: { type: string } & Record<string, unknown>): Record<string, unknown> {
  const { type: _type, at: _at, ...rest } = event;
  return rest;
}
