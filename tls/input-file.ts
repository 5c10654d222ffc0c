import { readFile, stat } from 'node:fs/promises';
import { TlsInputError } from './errors';

/** Far above any key, certificate chain or PKCS#12 file; stops a wrong path (a disk image) early. */
export const MAX_INPUT_BYTES = 1024 * 1024;

/** The bytes of an operator-named file, or a TlsInputError for `field` that says what is wrong. */
export async function readInputFile(file: string, field: string): Promise<Buffer> {
  if (typeof file !== 'string' || file.length === 0) throw new TlsInputError(field, 'no file was given');
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new TlsInputError(field, `${file} is not a regular file`);
    if (info.size > MAX_INPUT_BYTES) throw new TlsInputError(field, `${file} has ${info.size} bytes, more than the ${MAX_INPUT_BYTES} a TLS credential file can have`);
    const bytes = await readFile(file);
    if (bytes.length === 0) throw new TlsInputError(field, `${file} is empty`);
    return bytes;
  } catch (error) {
    if (error instanceof TlsInputError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be read (permission denied)' : 'cannot be read';
    throw new TlsInputError(field, `${file} ${reason}`, { cause: error });
  }
}
