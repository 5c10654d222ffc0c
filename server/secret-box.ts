import type { EventSecrets } from '../machines/effect-signatures';
import { KeywardError } from '../errors/keyward-error';

/**
 * The secrets that travel beside one event (PIN, SO PIN, passwords, a passphrase): in memory only,
 * never in the snapshot, the log, an actor's input or an error message.
 */
export class SecretBox implements EventSecrets {
  private readonly values = new Map<string, string>();
  private readonly outbox = new Map<string, string[]>();
  readonly output?: (name: string, values: readonly string[]) => void;

  /** `options.output`: the sender shows what an effect hands out (recovery shares), read with revealed(). */
  constructor(entries: Record<string, string> = {}, options: { output?: boolean } = {}) {
    for (const [name, value] of Object.entries(entries)) this.values.set(name, value);
    if (options.output) this.output = (name, values) => this.outbox.set(name, [...values]);
  }

  /** What an effect handed out under `name`, for the sender to show once. */
  revealed(name: string): readonly string[] | undefined {
    return this.outbox.get(name);
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
    this.outbox.clear();
  }
}

export class SecretMissingError extends KeywardError {
  constructor(readonly secret: string) {
    super('SECRET_MISSING', `the secret "${secret}" was not given with this event (it is never stored: enter it again)`);
    this.name = 'SecretMissingError';
  }
}
