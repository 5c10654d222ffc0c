import { randomBytes } from 'node:crypto';
import { KeyCustodyError } from '../errors/key-custody-error';

export const DEK_LENGTH = 32;
export const KEY_ID_LENGTH = 8;

/** NIST SP 800-38D §8.3: with random 96-bit nonces, at most 2^32 encryptions under one key. */
export const GCM_ENCRYPTION_LIMIT = 2 ** 32;

export interface Dek {
  /** 16 hex digits; random, so it says nothing about the key. */
  keyId: string;
  key: Buffer;
}

/** A key id as its 8 bytes; refuses anything but 16 hex digits (Buffer.from would silently truncate). */
export function keyIdBytes(keyId: string): Buffer {
  if (!/^[0-9a-f]{16}$/.test(keyId)) throw new RangeError('a DEK key id is 16 lowercase hex digits');
  return Buffer.from(keyId, 'hex');
}

export function generateDek(): Dek {
  return { keyId: randomBytes(KEY_ID_LENGTH).toString('hex'), key: randomBytes(DEK_LENGTH) };
}

interface Entry {
  key: Buffer;
  encryptions: number;
}

/** The current DEK with its key id as bytes, for the hot path of decryption. */
export interface CurrentDek {
  keyIdBytes: Buffer;
  key: Buffer;
}

/**
 * The DEKs this process holds, in memory only, by key id; one of them is current (encrypts new
 * values). Older ones stay so that a rotation can re-encrypt row by row.
 */
export class DekKeyring {
  private readonly entries = new Map<string, Entry>();
  private currentId: string | null = null;
  private currentBytes: CurrentDek | null = null;

  /** Installs a DEK; `encryptions` is the persisted count of values it has already encrypted. */
  install(dek: Dek, encryptions = 0, makeCurrent = true): void {
    if (dek.key.length !== DEK_LENGTH) throw new RangeError(`a DEK is ${DEK_LENGTH} bytes`);
    const existing = this.entries.get(dek.keyId);
    if (existing && !existing.key.equals(dek.key)) {
      throw new KeyCustodyError('DEK_KEY_ID_MISMATCH', `two different DEKs claim key id ${dek.keyId}`);
    }
    if (existing) existing.encryptions = Math.max(encryptions, existing.encryptions);
    else this.entries.set(dek.keyId, { key: Buffer.from(dek.key), encryptions });
    if (makeCurrent) this.makeCurrent(dek.keyId);
  }

  /** The current DEK and its id as bytes, or null when locked. */
  get currentDek(): CurrentDek | null {
    return this.currentBytes;
  }

  /** Makes an installed DEK the one new values are written with (a promotion, here or in another process). */
  makeCurrent(keyId: string): void {
    const entry = this.entries.get(keyId);
    if (!entry) throw new KeyCustodyError('DEK_UNAVAILABLE', `DEK ${keyId} is not loaded: it cannot become the current DEK`);
    this.currentId = keyId;
    this.currentBytes = { keyIdBytes: Buffer.from(keyId, 'hex'), key: entry.key };
  }

  /** Forgets one DEK (retired) and overwrites its bytes; the current one cannot be forgotten. */
  forget(keyId: string): void {
    if (keyId === this.currentId) throw new Error(`DEK ${keyId} is the current DEK: promote another first`);
    const entry = this.entries.get(keyId);
    if (!entry) return;
    entry.key.fill(0);
    this.entries.delete(keyId);
  }

  /** The key ids held, the current one among them. */
  keyIds(): string[] {
    return [...this.entries.keys()];
  }

  has(keyId: string): boolean {
    return this.entries.has(keyId);
  }

  get current(): string | null {
    return this.currentId;
  }

  key(keyId: string): Buffer {
    const entry = this.entries.get(keyId);
    if (!entry) {
      throw new KeyCustodyError('DEK_UNAVAILABLE', `DEK ${keyId} is not loaded: the key hierarchy is locked (unwrap with the KEK or recover with the backup password)`);
    }
    return entry.key;
  }

  currentKey(): Buffer {
    if (this.currentId === null) {
      throw new KeyCustodyError('DEK_UNAVAILABLE', 'no DEK is loaded: the key hierarchy is locked (unwrap with the KEK or recover with the backup password)');
    }
    return this.entries.get(this.currentId)!.key;
  }

  /** The current DEK, counted as used for one more encryption. */
  takeForEncryption(): { keyId: string; key: Buffer } {
    const key = this.currentKey();
    const keyId = this.currentId!;
    const entry = this.entries.get(keyId)!;
    if (entry.encryptions >= GCM_ENCRYPTION_LIMIT) {
      throw new KeyCustodyError('DEK_USAGE_EXHAUSTED', `DEK ${keyId} has reached the GCM limit of 2^32 encryptions; rotate the DEK`);
    }
    entry.encryptions += 1;
    return { keyId, key };
  }

  encryptions(keyId: string): number {
    return this.entries.get(keyId)?.encryptions ?? 0;
  }

  /** Forgets every DEK and overwrites the key bytes. */
  clear(): void {
    for (const entry of this.entries.values()) entry.key.fill(0);
    this.entries.clear();
    this.currentId = null;
    this.currentBytes = null;
  }
}
