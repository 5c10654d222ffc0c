/**
 * @types/jest types the asymmetric matchers (`expect.any(Number)`, `expect.stringContaining(…)`) as
 * `any`, which would let anything through the type checker and lint. These overloads, merged ahead of
 * @types/jest's, give them `unknown`: they go into expected values, never into code that uses them.
 */
export {};

declare global {
  namespace jest {
    interface Expect {
      anything(): unknown;
      any(classType: unknown): unknown;
      stringContaining(str: string): unknown;
      stringMatching(str: string | RegExp): unknown;
      objectContaining<E = object>(obj: E): unknown;
      arrayContaining<E = unknown>(arr: readonly E[]): unknown;
    }
    interface InverseAsymmetricMatchers {
      stringContaining(str: string): unknown;
      stringMatching(str: string | RegExp): unknown;
    }
  }
}
