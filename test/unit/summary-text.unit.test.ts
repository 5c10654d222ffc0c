import { RESTORE_SCENARIOS, VERSION_SCENARIOS } from '../../machines/startup-scenario';
import { describeScenario } from '../../server/web/scenario-text';
import { timeUntil, utcTime } from '../../server/web/time-text';

/** The status and outage pages' words: a sentence per start-up scenario, times as an operator reads them. */
describe('the start-up scenario in words', () => {
  it.each([...VERSION_SCENARIOS, ...RESTORE_SCENARIOS])('%s has a sentence of its own, without the code', (scenario) => {
    const sentence = describeScenario(scenario)!;
    expect(sentence).toMatch(/^[A-Z].{30,}\.$/s);
    expect(sentence).not.toMatch(/[A-Z]{2,}_[A-Z_]+/);
  });

  it('reads a healthy first start as normal, and knows no code it was not given', () => {
    expect(describeScenario('DB_NOT_INITIALIZED')).toMatch(/normal/);
    expect(new Set([...VERSION_SCENARIOS, ...RESTORE_SCENARIOS].map(describeScenario)).size).toBe(VERSION_SCENARIOS.length + RESTORE_SCENARIOS.length);
    expect(describeScenario('toString')).toBeNull();
    expect(describeScenario(null)).toBeNull();
  });
});

describe('times on the pages', () => {
  it('shows a recorded time in UTC to the second, and how long until a time', () => {
    expect(utcTime('2026-12-07T12:33:58.942Z')).toBe('2026-12-07 12:33:58 UTC');
    expect(utcTime('not a time')).toBe('not a time');
    const now = Date.parse('2026-12-07T12:00:00.000Z');
    expect(timeUntil('2026-12-07T12:00:40.000Z', now)).toBe('in 40 seconds');
    expect(timeUntil('2026-12-07T12:15:00.000Z', now)).toBe('in about 15 minutes');
    expect(timeUntil('2026-12-07T15:00:00.000Z', now)).toBe('in about 3 hours');
    expect(timeUntil('2026-12-07T11:00:00.000Z', now)).toBe('any moment now');
  });
});
