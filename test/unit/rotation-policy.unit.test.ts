import { loadConfig } from '../../server/config';
import {
  DEFAULT_ROTATION_POLICY,
  describeAge,
  dueOnlyFromItsRotation,
  GCM_BUDGET,
  nextRotation,
  PolicyKeyRecord,
  reencryptionRate,
  RotationPolicyConfig,
  rotationsDue,
} from '../../server/rotation-policy';

/** The rotation policy alone: records as the database keeps them, a fixed clock, limits as configured. */
describe('rotation policy', () => {
  const now = new Date('2026-12-07T12:00:00.000Z');
  const daysAgo = (days: number) => new Date(now.getTime() - days * 86_400_000).toISOString();
  const record = (overrides: Partial<PolicyKeyRecord> = {}): PolicyKeyRecord => ({
    dekKeyId: 'aaaaaaaaaaaaaaaa',
    state: 'primary',
    gcmEncryptions: 10,
    createdAt: daysAgo(10),
    kekCreatedAt: daysAgo(20),
    wrapped: { kek: { label: 'trustpoint-kek', id: '0a0b0c' } },
    ...overrides,
  });
  const policy = (overrides: Partial<RotationPolicyConfig> = {}): RotationPolicyConfig => ({ ...DEFAULT_ROTATION_POLICY, ...overrides });

  it('says nothing is due with the defaults: half the GCM budget, no age limits', () => {
    expect(DEFAULT_ROTATION_POLICY).toMatchObject({ dekMaxEncryptions: 2 ** 31, dekMaxAgeDays: null, kekMaxAgeDays: null, autoRotate: false });
    expect(rotationsDue([record({ gcmEncryptions: 2 ** 31 - 1, createdAt: daysAgo(3650), kekCreatedAt: daysAgo(3650) })], now, policy())).toEqual([]);
    expect(rotationsDue([], now, policy({ dekMaxEncryptions: 1, dekMaxAgeDays: 1, kekMaxAgeDays: 1 }))).toEqual([]);
  });

  it('makes the primary DEK due at its encryption limit, with the count and the limit in the reason', () => {
    const due = rotationsDue([record({ gcmEncryptions: 2 ** 31 })], now, policy());
    expect(due).toEqual([expect.objectContaining({ key: 'dek', reason: 'encryptions', keyId: 'aaaaaaaaaaaaaaaa', value: 2 ** 31, limit: 2 ** 31 })]);
    expect(due[0]!.message).toBe(
      `DEK aaaaaaaaaaaaaaaa has encrypted 2,147,483,648 values, at or over the limit of 2,147,483,648 (the GCM budget is ${GCM_BUDGET.toLocaleString('en')}): rotate the DEK`,
    );
    expect(rotationsDue([record({ gcmEncryptions: 4 })], now, policy({ dekMaxEncryptions: 5 }))).toEqual([]);
    expect(rotationsDue([record({ gcmEncryptions: 5 })], now, policy({ dekMaxEncryptions: 5 }))).toHaveLength(1);
  });

  it('reads only the primary DEK: an older DEK of a rotation under way and a pending one are not due', () => {
    const keyset = [
      record({ dekKeyId: 'bbbbbbbbbbbbbbbb', state: 'primary', gcmEncryptions: 3, createdAt: daysAgo(0.5) }),
      record({ dekKeyId: 'aaaaaaaaaaaaaaaa', state: 'active', gcmEncryptions: 900, createdAt: daysAgo(400) }),
      record({ dekKeyId: 'cccccccccccccccc', state: 'pending', gcmEncryptions: 0, createdAt: daysAgo(400) }),
    ];
    expect(rotationsDue(keyset, now, policy({ dekMaxEncryptions: 100, dekMaxAgeDays: 30 }))).toEqual([]);
  });

  it('makes the DEK and the KEK due by age when age limits are set, fractions of a day included', () => {
    const keyset = [record({ createdAt: daysAgo(31), kekCreatedAt: daysAgo(400) })];
    const due = rotationsDue(keyset, now, policy({ dekMaxAgeDays: 30, kekMaxAgeDays: 365 }));
    expect(due.map((item) => [item.key, item.reason])).toEqual([
      ['dek', 'age'],
      ['kek', 'age'],
    ]);
    expect(due[0]!.message).toBe('DEK aaaaaaaaaaaaaaaa is 31 days old, over the limit of 30 days: rotate the DEK');
    expect(due[1]).toMatchObject({ keyId: '0a0b0c', value: 400 * 86_400, limit: 365 * 86_400 });
    expect(due[1]!.message).toBe('the KEK (CKA_ID 0a0b0c) is 400 days old, over the limit of 365 days: rotate the KEK');
    expect(rotationsDue(keyset, now, policy({ dekMaxAgeDays: 32, kekMaxAgeDays: 401 }))).toEqual([]);
    const young = [record({ createdAt: new Date(now.getTime() - 90_000).toISOString(), kekCreatedAt: new Date(now.getTime() - 90_000).toISOString() })];
    expect(rotationsDue(young, now, policy({ dekMaxAgeDays: 0.001, kekMaxAgeDays: 0.001 })).map((item) => item.message)).toEqual([
      'DEK aaaaaaaaaaaaaaaa is 90 seconds old, over the limit of 0.001 days: rotate the DEK',
      'the KEK (CKA_ID 0a0b0c) is 90 seconds old, over the limit of 0.001 days: rotate the KEK',
    ]);
  });

  it('does not count a date ahead of the clock, or one it cannot read, as age', () => {
    const keyset = [record({ createdAt: 'not a date', kekCreatedAt: new Date(now.getTime() + 86_400_000).toISOString() })];
    expect(rotationsDue(keyset, now, policy({ dekMaxAgeDays: 0.0001, kekMaxAgeDays: 0.0001 }))).toEqual([]);
  });

  it('has no KEK to rotate when the primary DEK is not wrapped', () => {
    expect(rotationsDue([record({ wrapped: null, kekCreatedAt: daysAgo(999) })], now, policy({ kekMaxAgeDays: 1 }))).toEqual([]);
  });

  it('rotates the KEK first, then the DEK', () => {
    const all = rotationsDue([record({ gcmEncryptions: 10, createdAt: daysAgo(31), kekCreatedAt: daysAgo(400) })], now, policy({ dekMaxEncryptions: 5, dekMaxAgeDays: 30, kekMaxAgeDays: 365 }));
    expect(nextRotation(all)).toBe('kek');
    expect(nextRotation(all.filter((item) => item.key === 'dek'))).toBe('dek');
    expect(nextRotation([])).toBeNull();
  });

  it('does not call for another DEK rotation when only the last one’s re-encryption used the budget', () => {
    const config = policy({ dekMaxEncryptions: 100 });
    const primary = record({ gcmEncryptions: 150 });
    const due = rotationsDue([primary], now, config);
    const job = { targetKeyId: primary.dekKeyId, valuesDone: 140, valuesTotal: 140, startedAt: daysAgo(1), updatedAt: daysAgo(1), finishedAt: daysAgo(1) };
    // 10 encryptions of writes since: the limit of 100 is below the 140 values stored.
    expect(dueOnlyFromItsRotation(due, primary, job, config)).toBe(true);
    // 100 writes since the rotation: due on its own account.
    expect(dueOnlyFromItsRotation(due, { ...primary, gcmEncryptions: 240 }, job, config)).toBe(false);
    // A job for another DEK, no job, or an age reason too: the policy stands.
    expect(dueOnlyFromItsRotation(due, primary, { ...job, targetKeyId: 'bbbbbbbbbbbbbbbb' }, config)).toBe(false);
    expect(dueOnlyFromItsRotation(due, primary, null, config)).toBe(false);
    const aged = rotationsDue([{ ...primary, createdAt: daysAgo(40) }], now, { ...config, dekMaxAgeDays: 30 });
    expect(dueOnlyFromItsRotation(aged, primary, job, config)).toBe(false);
    expect(dueOnlyFromItsRotation([], primary, job, config)).toBe(false);
  });

  it('describes ages in the unit a person reads', () => {
    expect([describeAge(1), describeAge(59), describeAge(150), describeAge(3 * 3600), describeAge(86_400), describeAge(3 * 86_400)]).toEqual([
      '1 second',
      '59 seconds',
      '2 minutes',
      '3 hours',
      '24 hours',
      '3 days',
    ]);
  });

  it('reports the re-encryption job: values left, values per second, the fraction done', () => {
    const running = { valuesDone: 300, valuesTotal: 1000, startedAt: '2026-12-07T12:00:00.000Z', updatedAt: '2026-12-07T12:00:02.000Z', finishedAt: null };
    expect(reencryptionRate(running)).toEqual({ valuesLeft: 700, valuesPerSecond: 150, fraction: 0.3 });
    expect(reencryptionRate({ ...running, updatedAt: running.startedAt })).toEqual({ valuesLeft: 700, valuesPerSecond: 0, fraction: 0.3 });
    // Values written meanwhile under the new DEK are not re-encrypted: done may stay below the total.
    expect(reencryptionRate({ ...running, finishedAt: '2026-12-07T12:00:05.000Z' })).toMatchObject({ valuesLeft: 0, fraction: 1 });
    expect(reencryptionRate({ ...running, valuesTotal: 0, valuesDone: 0 })).toMatchObject({ valuesLeft: 0, fraction: 0 });
  });
});

describe('rotation policy configuration', () => {
  const base = { KEYWARD_HOME: '/srv/keyward-home' };
  const refused = (env: NodeJS.ProcessEnv) => {
    try {
      loadConfig({ ...base, ...env });
    } catch (error) {
      return (error as Error).message;
    }
    return 'accepted';
  };

  it('reads the limits, the switch and the interval', () => {
    expect(loadConfig(base).rotation).toEqual(DEFAULT_ROTATION_POLICY);
    expect(
      loadConfig({
        ...base,
        KEYWARD_DEK_MAX_ENCRYPTIONS: '1000000',
        KEYWARD_DEK_MAX_AGE_DAYS: '90',
        KEYWARD_KEK_MAX_AGE_DAYS: '0.5',
        KEYWARD_AUTO_ROTATE: 'ON',
        KEYWARD_ROTATION_CHECK_SECONDS: '5',
      }).rotation,
    ).toEqual({ dekMaxEncryptions: 1_000_000, dekMaxAgeDays: 90, kekMaxAgeDays: 0.5, autoRotate: true, checkIntervalSeconds: 5 });
    expect(loadConfig({ ...base, KEYWARD_DEK_MAX_AGE_DAYS: 'off', KEYWARD_AUTO_ROTATE: 'off', KEYWARD_DEK_MAX_ENCRYPTIONS: String(2 ** 32) }).rotation).toMatchObject({
      dekMaxAgeDays: null,
      autoRotate: false,
      dekMaxEncryptions: 2 ** 32,
    });
  });

  it('refuses a bad value with a message naming the variable and what it takes', () => {
    expect(refused({ KEYWARD_DEK_MAX_ENCRYPTIONS: String(2 ** 32 + 1) })).toBe(
      "KEYWARD_DEK_MAX_ENCRYPTIONS must be a whole number from 1 to 4294967296 (GCM's limit of 2^32 encryptions per DEK), not 4294967297",
    );
    expect(refused({ KEYWARD_DEK_MAX_ENCRYPTIONS: '0' })).toMatch(/^KEYWARD_DEK_MAX_ENCRYPTIONS must be a whole number from 1/);
    expect(refused({ KEYWARD_DEK_MAX_ENCRYPTIONS: '1e9' })).toMatch(/^KEYWARD_DEK_MAX_ENCRYPTIONS must be a whole number/);
    expect(refused({ KEYWARD_DEK_MAX_AGE_DAYS: '0' })).toBe('KEYWARD_DEK_MAX_AGE_DAYS must be a positive number of days, or off, not 0');
    expect(refused({ KEYWARD_KEK_MAX_AGE_DAYS: '-3' })).toBe('KEYWARD_KEK_MAX_AGE_DAYS must be a positive number of days, or off, not -3');
    expect(refused({ KEYWARD_KEK_MAX_AGE_DAYS: 'never' })).toBe('KEYWARD_KEK_MAX_AGE_DAYS must be a positive number of days, or off, not never');
    expect(refused({ KEYWARD_AUTO_ROTATE: 'yes' })).toBe('KEYWARD_AUTO_ROTATE must be on or off, not yes');
    expect(refused({ KEYWARD_ROTATION_CHECK_SECONDS: '0' })).toBe('KEYWARD_ROTATION_CHECK_SECONDS must be a positive integer');
  });
});
