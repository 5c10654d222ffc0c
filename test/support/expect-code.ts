import { KeywardError } from '../../errors/keyward-error';

/** Awaits a promise (or calls a function) that must fail with a KeywardError of this code; returns the error. */
export async function expectCode(promise: Promise<unknown> | (() => unknown), code: string): Promise<KeywardError> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    expect(error).toBeInstanceOf(KeywardError);
    // The message beside the code, so that a failing test shows what the error said.
    expect({ code: (error as KeywardError).code, message: (error as Error).message }).toMatchObject({ code });
    return error as KeywardError;
  }
  throw new Error(`expected ${code}, but the call succeeded`);
}
