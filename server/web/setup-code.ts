import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { KeywardError } from '../../errors/keyward-error';

/** Crockford's base32 without I, L, O, U: nothing to misread when copying from a console. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const GROUPS = 6;
const GROUP_LENGTH = 4;

export class SetupCodeError extends KeywardError {
  constructor(
    readonly reason: 'wrong' | 'used',
    message: string,
  ) {
    super(reason === 'used' ? 'SETUP_CODE_USED' : 'SETUP_CODE_WRONG', message);
    this.name = 'SetupCodeError';
  }
}

/**
 * The one-time code that unlocks the wizard (and auto-restore) for one browser session, so that
 * whoever reaches the port first cannot take the install. Generated at process start, 120 random
 * bits; this object keeps only its SHA-256, compared in constant time. It works once: after a
 * session has presented it, a second browser needs a restart (and the new code it prints).
 */
export class SetupCode {
  private readonly digest: Buffer;
  private usedAt: string | null = null;

  private constructor(code: string) {
    this.digest = hash(code);
  }

  /** Returns the code to print once, and the object that can check it. */
  static generate(): { code: string; setupCode: SetupCode } {
    const bytes = randomBytes(GROUPS * GROUP_LENGTH);
    // 32 symbols: the low five bits of each byte are uniform.
    const symbols = [...bytes].map((byte) => ALPHABET[byte & 31]!).join('');
    const code = symbols.match(new RegExp(`.{${GROUP_LENGTH}}`, 'g'))!.join('-');
    return { code, setupCode: new SetupCode(code) };
  }

  get used(): boolean {
    return this.usedAt !== null;
  }

  /** Accepts the code once; case, spaces and dashes do not matter. Throws SetupCodeError otherwise. */
  redeem(input: unknown, at: Date = new Date()): void {
    const given = typeof input === 'string' ? input : '';
    const matches = timingSafeEqual(hash(given), this.digest);
    if (!matches) throw new SetupCodeError('wrong', 'this is not the set-up code keyward printed on its console at start-up');
    if (this.usedAt !== null) {
      throw new SetupCodeError('used', 'this set-up code has been used already (it works once): restart keyward to get a new one on its console');
    }
    this.usedAt = at.toISOString();
  }
}

function hash(code: string): Buffer {
  const normalized = code.toUpperCase().replace(/[\s-]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0').slice(0, 256);
  return createHash('sha256').update(normalized).digest();
}
