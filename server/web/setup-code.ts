import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { StoredSetupCode } from '../../db/repositories/setup-code-repository';
import type { SetupCodeRepository } from '../../db/store';
import { KeywardError } from '../../errors/keyward-error';

/** Crockford's base32 without I, L, O, U: nothing to misread when copying from a console. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const GROUPS = 6;
const GROUP_LENGTH = 4;
const HASH_LENGTH = 32;
/**
 * scrypt, 16 MiB and ~50 ms per check, salted per code. The code has 120 random bits, so even a fast
 * hash of it could not be searched from a dump; the slow salted one keeps that true if the code is
 * ever shortened for typing, at the cost of one derivation per unlock attempt (rate-limited). A keyed
 * hash would need a key that no dump holds and every node has before the wizard: there is none.
 */
const KDF = { N: 16384, r: 8, p: 1 };
const KDF_LABEL = `scrypt:N=${KDF.N},r=${KDF.r},p=${KDF.p}`;

const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

export class SetupCodeError extends KeywardError {
  constructor(
    readonly reason: 'wrong' | 'used',
    message: string,
  ) {
    super(reason === 'used' ? 'SETUP_CODE_USED' : 'SETUP_CODE_WRONG', message);
    this.name = 'SetupCodeError';
  }
}

/** What a node's console shows: the code it made, or where the code another node made was printed. */
export type SetupCodeNotice = { code: string } | { printedBy: string; printedAt: string };

/** A new code: 24 symbols of Crockford's base32 in groups of four. */
export function generateSetupCode(): string {
  const bytes = randomBytes(GROUPS * GROUP_LENGTH);
  // 32 symbols: the low five bits of each byte are uniform.
  const symbols = [...bytes].map((byte) => ALPHABET[byte & 31]!).join('');
  return symbols.match(new RegExp(`.{${GROUP_LENGTH}}`, 'g'))!.join('-');
}

/**
 * The one-time code that unlocks the wizard (and auto-restore) for one browser session, so that
 * whoever reaches the port first cannot take the install. One code per database, kept only as its
 * salted hash, so any node accepts it and a dump cannot be turned into it. The first node that needs
 * one makes it and prints it; a node that finds an unused code made by another node prints where it
 * is. A node that starts again withdraws its earlier code and ends the set-up sessions it granted (as
 * a restart always did), then makes a new one; any node makes a new one once the code has been used.
 */
export class SharedSetupCode {
  constructor(
    private readonly codes: SetupCodeRepository,
    /** This node, as its console is found: host name and home. */
    private readonly node: string,
    /** Ends the set-up sessions granted so far; returns how many. */
    private readonly revokeGrants: () => Promise<number>,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /** Makes the code if this node should (see the class), else says where the current one was printed. */
  async announce(): Promise<SetupCodeNotice & { revoked?: number }> {
    for (;;) {
      const current = await this.codes.find();
      if (current && current.usedAt === null && current.createdBy !== this.node) return { printedBy: current.createdBy, printedAt: current.createdAt };
      const code = generateSetupCode();
      const stored = await hashed(code, this.node, this.clock());
      const made = current ? await this.codes.replace(current.hash, stored) : await this.codes.create(stored);
      if (!made) continue;
      // No code before (a first start, or after operation), or this node's own earlier one: what it granted ends now.
      const revoked = !current || current.createdBy === this.node ? await this.revokeGrants() : 0;
      return { code, revoked };
    }
  }

  /**
   * At this node's start, before it serves: the code its earlier run printed is withdrawn, and what
   * it granted ends (as a restart always did). Returns how many set-up sessions ended.
   */
  async restarted(): Promise<number> {
    const current = await this.codes.find();
    if (current?.createdBy !== this.node) return 0;
    await this.codes.deleteIf(current.hash);
    return this.revokeGrants();
  }

  async used(): Promise<boolean> {
    return (await this.codes.find())?.usedAt != null;
  }

  /** Accepts the code once, on any node; case, spaces and dashes do not matter. Throws SetupCodeError otherwise. */
  async redeem(input: unknown): Promise<void> {
    const given = typeof input === 'string' ? input : '';
    const current = await this.codes.find();
    const matches = current !== null && timingSafeEqual(await derive(given, current.salt, current.kdf), current.hash);
    if (!matches) throw new SetupCodeError('wrong', 'this is not the set-up code keyward printed on its console');
    if (current.usedAt !== null || !(await this.codes.markUsed(current.hash, this.clock().toISOString()))) {
      throw new SetupCodeError('used', 'this set-up code has been used already (it works once): restart a keyward node to get a new one on its console');
    }
  }

  /** The wizard is complete: the code is deleted, and the next set-up (an auto-restore) gets a new one. */
  async retire(): Promise<void> {
    await this.codes.delete();
  }
}

async function hashed(code: string, node: string, at: Date): Promise<Omit<StoredSetupCode, 'usedAt'>> {
  const salt = randomBytes(16);
  return { salt, hash: await derive(code, salt, KDF_LABEL), kdf: KDF_LABEL, createdAt: at.toISOString(), createdBy: node };
}

async function derive(code: string, salt: Buffer, kdf: string): Promise<Buffer> {
  const match = /^scrypt:N=(\d+),r=(\d+),p=(\d+)$/.exec(kdf);
  if (!match) throw new Error(`the stored set-up code uses ${kdf}, which this keyward does not know`);
  const [N, r, p] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const normalized = code.toUpperCase().replace(/[\s-]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0').slice(0, 256);
  return scryptAsync(normalized, salt, HASH_LENGTH, { N, r, p, maxmem: 256 * N * r });
}
