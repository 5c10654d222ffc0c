import { KeywardError } from '../errors/keyward-error';

/** Strength rules for the backup password and the admin password; the message never repeats it. */
export class WeakPasswordError extends KeywardError {
  constructor(message: string) {
    super('WEAK_PASSWORD', message);
    this.name = 'WeakPasswordError';
  }
}

export const MIN_PASSWORD_LENGTH = 12;

export function checkPasswordStrength(password: string, what: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) throw new WeakPasswordError(`the ${what} needs at least ${MIN_PASSWORD_LENGTH} characters`);
  if (password.length > 1024) throw new WeakPasswordError(`the ${what} is longer than 1024 characters`);
  if (new Set(password).size < 5) throw new WeakPasswordError(`the ${what} needs at least 5 different characters`);
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(password)).length;
  if (classes < 2 && password.length < 20) throw new WeakPasswordError(`the ${what} needs two kinds of characters (letters, digits, symbols) or at least 20 characters`);
}
