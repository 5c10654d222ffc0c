import { checkPasswordStrength, MIN_PASSWORD_LENGTH, WeakPasswordError } from '../../../effects/password-policy';

/** The strength rules as the forms list them (effects/password-policy.ts enforces them). */
export const PASSWORD_RULES = [`at least ${MIN_PASSWORD_LENGTH} characters`, 'at least 5 different characters', 'two kinds of characters (letters, digits, symbols), or at least 20 characters'];

/**
 * A new password and its confirmation, checked before any event is sent, so a weak or mistyped
 * password changes nothing at all. Returns the field and message of the first problem, or null.
 */
export function checkNewPassword(password: string, confirmation: string, what: string): { field: string; message: string } | null {
  if (password === '') return { field: 'password', message: `Enter the ${what}.` };
  try {
    checkPasswordStrength(password, what);
  } catch (error) {
    if (error instanceof WeakPasswordError) return { field: 'password', message: error.message };
    throw error;
  }
  if (confirmation !== password) return { field: 'passwordConfirm', message: `The two ${what}s differ: type the same one twice.` };
  return null;
}
