import { fitLine, interleave, median, toJson } from './measure';

describe('bench measurement helpers', () => {
  test('interleave alternates the sides after one warm-up of each and reports medians', async () => {
    const calls: string[] = [];
    const oursValues = [100, 5, 3, 4, 1000];
    const baselineValues = [200, 7, 9, 8, 1];
    let o = 0;
    let b = 0;
    const result = await interleave(
      4,
      () => {
        calls.push('ours');
        return oursValues[o++]!;
      },
      async () => {
        calls.push('baseline');
        return baselineValues[b++]!;
      },
    );
    expect(calls).toEqual(['ours', 'baseline', 'baseline', 'ours', 'ours', 'baseline', 'baseline', 'ours', 'ours', 'baseline']);
    // The warm-up samples (100, 200) are not recorded; the median of 5, 3, 4, 1000 is 4.5.
    expect(result.oursSamples).toEqual([5, 3, 4, 1000]);
    expect(result.baselineSamples).toEqual([7, 9, 8, 1]);
    expect(result.ours).toBe(4.5);
    expect(result.baseline).toBe(7.5);
  });

  test('interleave refuses a round count that is not a positive integer', async () => {
    await expect(
      interleave(
        0,
        () => 1,
        () => 1,
      ),
    ).rejects.toThrow(RangeError);
    await expect(
      interleave(
        2.5,
        () => 1,
        () => 1,
      ),
    ).rejects.toThrow(RangeError);
  });

  test('median of odd and even counts, unsorted input untouched', () => {
    const values = [9, 1, 5];
    expect(median(values)).toBe(5);
    expect(values).toEqual([9, 1, 5]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  test("fitLine recovers slope and intercept, and the least-squares line through noise with its slope's standard error", () => {
    const exact = fitLine([1000, 25000, 50000, 100000].map((x) => ({ x, y: 1.5 + 0.00002 * x })));
    expect(exact.slope).toBeCloseTo(0.00002, 12);
    expect(exact.intercept).toBeCloseTo(1.5, 9);
    // (0,1), (1,3), (2,2): slope 0.5, intercept 1.5 by the normal equations.
    const noisy = fitLine([
      { x: 0, y: 1 },
      { x: 1, y: 3 },
      { x: 2, y: 2 },
    ]);
    expect(noisy.slope).toBeCloseTo(0.5, 12);
    expect(noisy.intercept).toBeCloseTo(1.5, 12);
    // Residuals -0.5, 1, -0.5: sqrt(1.5 / (3 - 2) / 2).
    expect(noisy.slopeError).toBeCloseTo(Math.sqrt(0.75), 12);
    expect(exact.slopeError).toBeCloseTo(0, 12);
    expect(() =>
      fitLine([
        { x: 3, y: 1 },
        { x: 3, y: 2 },
      ]),
    ).toThrow(RangeError);
  });

  test('the JSON line holds bench and results with exactly their five fields', () => {
    const line = toJson({ bench: 'x', definitions: ['raw thing'], results: [{ name: 'n', value: 2, unit: 'ms', baseline: 1, ratio: 0.5, extra: true } as never] });
    expect(JSON.parse(line)).toEqual({ bench: 'x', results: [{ name: 'n', value: 2, unit: 'ms', baseline: 1, ratio: 0.5 }] });
  });
});
