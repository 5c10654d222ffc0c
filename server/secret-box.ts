import type { EventSecrets } from '../machines/effect-signatures';
import { KeywardError } from '../errors/keyward-error';

/**
 * The secrets that travel beside one event (PIN, SO PIN, passwords, a passphrase): in memory only,
 * never in the snapshot, the log, an actor's input or an error message.
 */
export class SecretBox implements EventSecrets {
  private readonly values = new Map<string, string>();

  constructor(entries: Record<string, string> = {}) {
    for (const [name, value] of Object.entries(entries)) this.values.set(name, value);
  }

  has(name: string): boolean {
    return this.values.has(name);
  }

  get(name: string): string {
    const value = this.values.get(name);
    if (value === undefined || value === '') throw new SecretMissingError(name);
    return value;
  }

  names(): string[] {
    return [...this.values.keys()];
  }

  /** Drops the references; JavaScript strings cannot be overwritten, so this is the most there is. */
  clear(): void {
    this.values.clear();
  }
}

export class SecretMissingError extends KeywardError {
  constructor(readonly secret: string) {
    super('SECRET_MISSING', `the secret "${secret}" was not given with this event (it is never stored: enter it again)`);
    this.name = 'SecretMissingError';
  }
}
