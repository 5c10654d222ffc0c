import { KeywardError } from '../errors/keyward-error';

/**
 * Something the operator gave us (a file, a password, a name) is unusable. `field` names the form
 * field or option at fault so the web page can put the message next to it. Messages never contain a
 * password or key material; they may quote a short, non-secret value such as a host name.
 */
export class TlsInputError extends KeywardError {
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super('INVALID_TLS_INPUT', message, options);
    this.name = 'TlsInputError';
    this.field = field;
  }
}

/**
 * The files in a TLS directory are present but unusable: one is missing, unreadable, or the key does
 * not belong to the certificate. Not the operator's input, so not a TlsInputError.
 */
export class TlsFilesError extends KeywardError {
  readonly file: string;

  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super('TLS_FILES', message, options);
    this.name = 'TlsFilesError';
    this.file = file;
  }
}

/** Quotes a value for a message, shortened so that a pasted blob does not flood the log. */
export function quote(value: string): string {
  const printable = value.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(printable.length > 80 ? `${printable.slice(0, 77)}...` : printable);
}
