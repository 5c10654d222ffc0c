import { parseCommandLine } from '../../server/cli-args';
import {
  checkSecrets,
  EVENT_SCHEMAS,
  EVENT_TYPES,
  eventFromForm,
  EventPayloadError,
  EXTERNAL_EVENT_TYPES,
  LifecycleEvent,
  LifecycleEventType,
  parseExternalEvent,
  payloadFields,
  requiredSecrets,
  SECRETS_BY_EVENT,
} from '../../machines/events';

const AT = '2026-01-01T00:00:00.000Z';

/**
 * A valid payload for every event an operator, a page or a script may send. The check below fails
 * when an event is added to the schema without one here, so every new event is covered by the rest.
 */
const SAMPLES: Record<string, Record<string, string>> = {
  SELECT_STORAGE: { storageType: 'softhsm' },
  SETUP_HSM: { hsmType: 'softhsm', modulePath: '/usr/lib/softhsm/libsofthsm2.so', label: 'Trustpoint-SoftHSM', slot: '2' },
  CHOOSE_FRESH: {},
  RESTORE_BACKUP: { path: '/var/backups/keyward.kwbak' },
  GENERATE_TLS: { subjectAltNames: 'localhost, 127.0.0.1' },
  IMPORT_TLS_PKCS12: { path: '/tmp/server.p12' },
  IMPORT_TLS_FILES: { keyFile: '/tmp/key.pem', certificateFile: '/tmp/cert.pem', chainFile: '/tmp/chain.pem' },
  APPLY_TLS: {},
  CANCEL_TLS: {},
  SET_BACKUP_PASSWORD: {},
  ADD_DEMO_DATA: {},
  SKIP_DEMO_DATA: {},
  CREATE_ADMIN: { username: 'admin' },
  SUBMIT_BACKUP_PASSWORD: {},
  DECLARE_TOKEN_LOST: {},
  BACK: {},
  ACKNOWLEDGE_LOG_BREAK: { revision: '7' },
  ROTATE_KEK: {},
  ROTATE_DEK: {},
  CHANGE_BACKUP_PASSWORD: { authorizeWith: 'admin', username: 'admin' },
  CHANGE_TOKEN_PIN: {},
  ADD_SECOND_KEK: { modulePath: '/usr/lib/softhsm/libsofthsm2.so', label: 'keyward-second' },
  REMOVE_SECOND_KEK: {},
  CREATE_RECOVERY_SHARES: { shares: '5', threshold: '3' },
  SKIP_RECOVERY_SHARES: {},
  SUBMIT_RECOVERY_SHARE: {},
};

/** Fields that may be left out, and what their absence means. */
const OPTIONAL = new Map<string, unknown>([
  ['SETUP_HSM.slot', null],
  ['IMPORT_TLS_FILES.chainFile', null],
  ['CHANGE_BACKUP_PASSWORD.authorizeWith', 'backup_password'],
  ['CHANGE_BACKUP_PASSWORD.username', null],
]);

const refusal = (run: () => unknown): { field: string; message: string } => {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(EventPayloadError);
    return { field: (error as EventPayloadError).field, message: (error as Error).message };
  }
  throw new Error('accepted');
};

const secretValues = (names: readonly string[]) => Object.fromEntries(names.map((name) => [name, `value-of-${name}`]));

describe('event schemas', () => {
  it('give the list of events, the external ones and the secret names from one table', () => {
    expect(EVENT_TYPES).toEqual(Object.keys(EVENT_SCHEMAS));
    expect(EXTERNAL_EVENT_TYPES).toEqual(EVENT_TYPES.filter((type) => type !== 'BOOT'));
    expect(Object.keys(SAMPLES).sort()).toEqual([...EXTERNAL_EVENT_TYPES].sort());
    for (const type of EVENT_TYPES) expect(SECRETS_BY_EVENT[type] ?? []).toEqual(EVENT_SCHEMAS[type].secrets);
  });

  it.each(Object.keys(SAMPLES))('%s: the parser takes exactly the schema fields and refuses each required one missing', (name) => {
    const type = name as LifecycleEventType;
    const sample = SAMPLES[type]!;
    expect(Object.keys(sample).sort()).toEqual(payloadFields(type).sort());
    const event = parseExternalEvent(type, { ...sample, unrelated: 'dropped' }, AT);
    expect(Object.keys(event).sort()).toEqual(['at', 'type', ...payloadFields(type)].sort());
    for (const field of payloadFields(type)) {
      const { [field]: _left, ...without } = sample;
      if (OPTIONAL.has(`${type}.${field}`)) expect(parseExternalEvent(type, without, AT)).toMatchObject({ type, [field]: OPTIONAL.get(`${type}.${field}`) });
      // keyward's own message, never zod's generic one.
      else expect(refusal(() => parseExternalEvent(type, without, AT))).toEqual({ field, message: expect.not.stringMatching(/Invalid input/) });
    }
  });

  it.each(Object.keys(SAMPLES))('%s: the web form parser fills exactly the schema fields and secrets', (name) => {
    const type = name as LifecycleEventType;
    const form: Record<string, string> = { ...SAMPLES[type], ...secretValues(EVENT_SCHEMAS[type].secrets), _csrf: 'token', other: 'x' };
    const { payload, secrets } = eventFromForm(type, (field) => form[field] ?? '');
    expect(payload).toEqual(SAMPLES[type]);
    expect(secrets).toEqual(secretValues(EVENT_SCHEMAS[type].secrets));
    // A form whose field has another name says so; an empty secret is left out and then named as missing.
    if (EVENT_SCHEMAS[type].secrets.length > 0) {
      const [first] = EVENT_SCHEMAS[type].secrets;
      const renamed = eventFromForm(type, (field) => (field === `form-${first}` ? 'typed' : ''), { [first!]: `form-${first}` });
      expect(renamed.secrets).toEqual({ [first!]: 'typed' });
    }
  });

  it.each(Object.keys(SAMPLES))('%s: the CLI carries the payload and names each secret; the refusal names what is missing or extra', (name) => {
    const type = name as LifecycleEventType;
    const secretNames = EVENT_SCHEMAS[type].secrets;
    const argv = ['send', type, '--payload', JSON.stringify(SAMPLES[type]), ...secretNames.flatMap((secret) => ['--secret', `${secret}=file:/run/${secret}`])];
    const parsed = parseCommandLine(argv);
    expect(parsed.positional).toEqual([type]);
    expect(JSON.parse(parsed.flags.get('payload')![0]!)).toEqual(SAMPLES[type]);
    expect((parsed.flags.get('secret') ?? []).map((spec) => spec.split('=')[0])).toEqual(secretNames);

    const event = parseExternalEvent(type, SAMPLES[type]!, AT);
    const needed = requiredSecrets(event);
    expect(() => checkSecrets(event, secretValues(needed))).not.toThrow();
    for (const secret of needed) {
      const { [secret]: _left, ...without } = secretValues(needed);
      expect(refusal(() => checkSecrets(event, without))).toEqual({ field: secret, message: expect.stringContaining(`${type} needs the secret(s) ${secret}`) });
      expect(refusal(() => checkSecrets(event, { ...without, [secret]: '' })).field).toBe(secret);
    }
    expect(refusal(() => checkSecrets(event, { ...secretValues(needed), token: 'x' }))).toEqual({ field: 'token', message: `${type} takes no secret named token` });
  });

  it('takes N and K of recovery shares as whole numbers, 2 ≤ K ≤ N ≤ 16', () => {
    expect(parseExternalEvent('CREATE_RECOVERY_SHARES', { shares: 5, threshold: '3' }, AT)).toMatchObject({ shares: 5, threshold: 3 });
    expect(refusal(() => parseExternalEvent('CREATE_RECOVERY_SHARES', { shares: '3', threshold: '4' }, AT))).toEqual({ field: 'threshold', message: 'threshold must not exceed the number of shares' });
    expect(refusal(() => parseExternalEvent('CREATE_RECOVERY_SHARES', { shares: '17', threshold: '3' }, AT))).toEqual({ field: 'shares', message: 'shares must be a whole number from 2 to 16' });
    expect(refusal(() => parseExternalEvent('CREATE_RECOVERY_SHARES', { shares: '5', threshold: '1.5' }, AT)).field).toBe('threshold');
  });

  it('lets a physical HSM go without the SO PIN, which only initializes a SoftHSM token', () => {
    const physical = parseExternalEvent('SETUP_HSM', { ...SAMPLES.SETUP_HSM, hsmType: 'physical' }, AT);
    expect(requiredSecrets(physical)).toEqual(['pin']);
    expect(refusal(() => checkSecrets(physical, { pin: '1', soPin: '2' })).message).toBe('SETUP_HSM takes no secret named soPin');
    expect(requiredSecrets(parseExternalEvent('SETUP_HSM', SAMPLES.SETUP_HSM!, AT))).toEqual(['pin', 'soPin']);
  });

  it('refuses secrets in the payload, BOOT from outside and an unknown event, with the messages operators see', () => {
    expect(refusal(() => parseExternalEvent('CREATE_ADMIN', { username: 'a', password: 'x' }, AT))).toEqual({
      field: 'password',
      message: 'password must not be in the payload: pass secrets on stdin or in a file',
    });
    expect(refusal(() => parseExternalEvent('BOOT', {}, AT))).toEqual({ field: 'type', message: 'BOOT is sent by start-up with a probed context: use `keyward boot`' });
    expect(refusal(() => parseExternalEvent('REBOOT', {}, AT))).toEqual({ field: 'type', message: `unknown event "REBOOT"; events: ${EVENT_TYPES.join(', ')}` });
  });

  it('checks and normalizes each field as before', () => {
    const cases: Array<[LifecycleEventType, Record<string, unknown>, string, string]> = [
      ['SELECT_STORAGE', { storageType: 'disk' }, 'storageType', 'storageType must be software, softhsm or physical_hsm'],
      ['SETUP_HSM', { ...SAMPLES.SETUP_HSM, hsmType: 'cloud' }, 'hsmType', 'hsmType must be softhsm or physical'],
      ['SETUP_HSM', { ...SAMPLES.SETUP_HSM, modulePath: 'lib.so' }, 'modulePath', 'modulePath must be an absolute path to a PKCS#11 library'],
      ['SETUP_HSM', { ...SAMPLES.SETUP_HSM, modulePath: `/${'a'.repeat(4096)}` }, 'modulePath', 'modulePath is longer than 4096 characters'],
      ['SETUP_HSM', { ...SAMPLES.SETUP_HSM, label: 'ä' }, 'label', 'label must be 1–32 printable ASCII characters'],
      ['SETUP_HSM', { ...SAMPLES.SETUP_HSM, label: 'a\nb' }, 'label', 'label contains control characters'],
      ['SETUP_HSM', { ...SAMPLES.SETUP_HSM, slot: '-1' }, 'slot', 'slot must be a non-negative integer'],
      ['GENERATE_TLS', { subjectAltNames: ' , ' }, 'subjectAltNames', 'at least one subject alternative name is required'],
      ['GENERATE_TLS', { subjectAltNames: ['x'.repeat(254)] }, 'subjectAltNames', 'too many or too long subject alternative names'],
      ['IMPORT_TLS_FILES', { ...SAMPLES.IMPORT_TLS_FILES, chainFile: '  ' }, 'chainFile', 'chainFile is required'],
      ['CREATE_ADMIN', { username: 'a b' }, 'username', 'username may hold letters, digits and . _ @ - only'],
      ['ACKNOWLEDGE_LOG_BREAK', { revision: 0 }, 'revision', 'revision must be the broken row `keyward audit verify` reported'],
    ];
    for (const [type, payload, field, message] of cases) expect({ type, ...refusal(() => parseExternalEvent(type, payload, AT)) }).toEqual({ type, field, message });

    const accepted: Array<[LifecycleEventType, Record<string, unknown>, LifecycleEvent]> = [
      ['SETUP_HSM', { hsmType: 'physical', modulePath: ' /m.so ', label: 'L', slot: '' }, { type: 'SETUP_HSM', at: AT, hsmType: 'physical', modulePath: '/m.so', label: 'L', slot: null }],
      ['SETUP_HSM', { hsmType: 'softhsm', modulePath: '/m.so', label: 'L' }, { type: 'SETUP_HSM', at: AT, hsmType: 'softhsm', modulePath: '/m.so', label: 'L', slot: null }],
      ['IMPORT_TLS_FILES', { keyFile: 'k', certificateFile: 'c' }, { type: 'IMPORT_TLS_FILES', at: AT, keyFile: 'k', certificateFile: 'c', chainFile: null }],
      ['GENERATE_TLS', { subjectAltNames: 'a,b c\nd' }, { type: 'GENERATE_TLS', at: AT, subjectAltNames: ['a', 'b', 'c', 'd'] }],
      ['IMPORT_TLS_FILES', { keyFile: 'k', certificateFile: 'c', chainFile: '' }, { type: 'IMPORT_TLS_FILES', at: AT, keyFile: 'k', certificateFile: 'c', chainFile: null }],
      ['CREATE_ADMIN', { username: ' admin ' }, { type: 'CREATE_ADMIN', at: AT, username: 'admin' }],
      ['ACKNOWLEDGE_LOG_BREAK', { revision: '12' }, { type: 'ACKNOWLEDGE_LOG_BREAK', at: AT, revision: 12 }],
    ];
    for (const [type, payload, event] of accepted) expect(parseExternalEvent(type, payload, AT)).toEqual(event);
  });
});
