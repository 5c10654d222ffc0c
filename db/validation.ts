import { KeywardError } from '../errors/keyward-error';

/** Bad input is refused with a message that names the field and never echoes a secret. */
export class ValidationError extends KeywardError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('INVALID_INPUT', message);
    this.name = 'ValidationError';
  }
}

export function requireName(field: string, value: unknown, max = 255): string {
  if (typeof value !== 'string' || value.trim().length === 0) throw new ValidationError(field, `${field} is required`);
  const trimmed = value.trim();
  if (trimmed.length > max) throw new ValidationError(field, `${field} is longer than ${max} characters`);
  if (/[\u0000-\u001f\u007f]/.test(trimmed)) throw new ValidationError(field, `${field} contains control characters`);
  return trimmed;
}

export function optionalSecret(field: string, value: unknown, max = 1024): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string') throw new ValidationError(field, `${field} must be text`);
  if (value.length > max) throw new ValidationError(field, `${field} is longer than ${max} characters`);
  return value;
}
