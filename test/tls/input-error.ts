import { TlsInputError } from '../../tls/errors';

/** The TlsInputError a rejected import ends with (fails the test if it resolves or fails otherwise). */
export async function inputError(promise: Promise<unknown>): Promise<TlsInputError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TlsInputError);
  return error as TlsInputError;
}
