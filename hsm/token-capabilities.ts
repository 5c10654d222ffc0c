import * as pkcs11js from 'pkcs11js';
import { KeyCustodyError } from '../errors/key-custody-error';
import { keySizes } from './key-sizes';
import type { WrapMechanism } from './key-wrapper';
import { Pkcs11Module } from './pkcs11-module';
import { PinLimits, pinLimitsOf } from './token-pin-limits';

/** keyward's wrap mechanisms, strongest first (docs/formats.md describes each blob). */
export const WRAP_MECHANISMS: readonly { name: WrapMechanism; code: number; what: string }[] = [
  { name: 'CKM_AES_KEY_WRAP', code: pkcs11js.CKM_AES_KEY_WRAP, what: 'AES key wrap, RFC 3394' },
  { name: 'CKM_AES_KEY_WRAP_PAD', code: pkcs11js.CKM_AES_KEY_WRAP_PAD, what: 'AES key wrap with padding, RFC 5649' },
  { name: 'CKM_AES_CBC_PAD', code: pkcs11js.CKM_AES_CBC_PAD, what: 'AES-CBC with PKCS#7 padding, random IV, key check values' },
];

/** The AES mechanisms worth showing an operator, by code. */
const SHOWN: Record<number, string> = {
  [pkcs11js.CKM_AES_KEY_GEN]: 'CKM_AES_KEY_GEN',
  [pkcs11js.CKM_AES_KEY_WRAP]: 'CKM_AES_KEY_WRAP',
  [pkcs11js.CKM_AES_KEY_WRAP_PAD]: 'CKM_AES_KEY_WRAP_PAD',
  0x210b: 'CKM_AES_KEY_WRAP_KWP',
  [pkcs11js.CKM_AES_CBC_PAD]: 'CKM_AES_CBC_PAD',
  [pkcs11js.CKM_AES_CBC]: 'CKM_AES_CBC',
  [pkcs11js.CKM_AES_ECB]: 'CKM_AES_ECB',
  [pkcs11js.CKM_AES_GCM]: 'CKM_AES_GCM',
};

const KEK_BYTES = 32;

export interface MechanismCapability {
  name: string;
  code: number;
  wrap: boolean;
  unwrap: boolean;
  generate: boolean;
  minKeySize: number;
  maxKeySize: number;
}

export interface TokenCapabilities {
  modulePath: string;
  /** The token the capabilities were read from: the one with the label, or the module's first slot. */
  tokenLabel: string | null;
  pinLength: PinLimits | null;
  /** The AES mechanisms the token offers (all of them, not only those keyward uses). */
  mechanisms: MechanismCapability[];
  /** The wrap keyward would use on this token, or null when it offers none that keyward can use. */
  wrap: WrapMechanism | null;
  /** The token can generate the 256-bit KEK. */
  kekGeneration: boolean;
}

/** Sizes of AES mechanisms are in bytes by the standard; some modules give bits. Either way, 256-bit keys fit? */
function takes256BitKeys(info: { minKeySize: number; maxKeySize: number }): boolean {
  const fits = (n: number) => info.minKeySize <= n && n <= info.maxKeySize;
  return (info.minKeySize === 0 && info.maxKeySize === 0) || fits(KEK_BYTES) || fits(KEK_BYTES * 8);
}

/** The wrap keyward picks from what a token offers: the strongest that wraps and unwraps with a 256-bit key. */
export function chooseWrap(mechanisms: MechanismCapability[]): WrapMechanism | null {
  for (const candidate of WRAP_MECHANISMS) {
    const offered = mechanisms.find((m) => m.code === candidate.code);
    if (offered && offered.wrap && offered.unwrap && takes256BitKeys(offered)) return candidate.name;
  }
  return null;
}

/**
 * Reads, without logging in, what the token offers: its mechanisms (C_GetMechanismList,
 * C_GetMechanismInfo) and its PIN length limits. The token is found by label; before a SoftHSM token
 * exists the module's first slot answers for it (every slot of one module offers the same).
 * Returns null when the module has no slot at all.
 */
export function readCapabilities(modulePath: string, tokenLabel: string): TokenCapabilities | null {
  const module = Pkcs11Module.open(modulePath);
  const api = module.api;
  const slot = module.findSlot(tokenLabel) ?? api.C_GetSlotList(true)[0] ?? null;
  if (slot === null) return null;
  let label: string | null = null;
  let pinLength: TokenCapabilities['pinLength'] = null;
  try {
    const info = api.C_GetTokenInfo(slot);
    label = info.label.replace(/[\s\0]+$/, '');
    pinLength = pinLimitsOf(info);
  } catch {
    // A slot whose token went away between the calls: its mechanisms still answer.
  }
  const mechanisms: MechanismCapability[] = [];
  for (const code of api.C_GetMechanismList(slot)) {
    const name = SHOWN[code];
    if (!name) continue;
    const info = api.C_GetMechanismInfo(slot, code);
    mechanisms.push({
      name,
      code,
      wrap: (info.flags & pkcs11js.CKF_WRAP) !== 0,
      unwrap: (info.flags & pkcs11js.CKF_UNWRAP) !== 0,
      generate: (info.flags & pkcs11js.CKF_GENERATE) !== 0,
      minKeySize: info.minKeySize,
      maxKeySize: info.maxKeySize,
    });
  }
  const keyGen = mechanisms.find((m) => m.code === pkcs11js.CKM_AES_KEY_GEN);
  return { modulePath, tokenLabel: label, pinLength, mechanisms, wrap: chooseWrap(mechanisms), kekGeneration: !!keyGen && keyGen.generate && takes256BitKeys(keyGen) };
}

/** One line per offered AES mechanism, for a page or a terminal. */
export function describeMechanisms(capabilities: TokenCapabilities): string {
  if (capabilities.mechanisms.length === 0) return 'no AES mechanisms';
  return capabilities.mechanisms
    .map((m) => {
      const uses = [m.generate && 'generate', m.wrap && 'wrap', m.unwrap && 'unwrap'].filter(Boolean).join('/') || 'encrypt/decrypt only';
      return `${m.name} (${uses}, ${keySizes(m.minKeySize, m.maxKeySize)})`;
    })
    .join(', ');
}

/**
 * Refuses a token keyward cannot use, before anything is created on it: the message names what
 * keyward needs and what the token offers.
 */
export function requireUsableToken(capabilities: TokenCapabilities): WrapMechanism {
  const needs = `keyward needs CKM_AES_KEY_GEN for 256-bit keys and one of ${WRAP_MECHANISMS.map((m) => m.name).join(', ')} with wrap and unwrap for 256-bit keys`;
  const where = `the token${capabilities.tokenLabel ? ` "${capabilities.tokenLabel}"` : ''} in ${capabilities.modulePath}`;
  if (capabilities.wrap === null || !capabilities.kekGeneration) {
    throw new KeyCustodyError('MECHANISM_UNSUPPORTED', `${where} offers no usable key wrap: ${needs}; it offers ${describeMechanisms(capabilities)}. Nothing was created on the token.`);
  }
  return capabilities.wrap;
}

export type CapabilitiesReport = { ok: true; capabilities: TokenCapabilities } | { ok: false; modulePath: string; problem: string };

/**
 * The capabilities for a page or `keyward inspect`: never throws. `refresh` re-reads the module's
 * tokens first (it closes this process's sessions of that module: only where none are in use).
 */
export function reportCapabilities(modulePath: string, tokenLabel: string, refresh = false): CapabilitiesReport {
  try {
    if (refresh) Pkcs11Module.open(modulePath).refresh();
    const capabilities = readCapabilities(modulePath, tokenLabel);
    if (capabilities === null) return { ok: false, modulePath, problem: 'the module has no slot with a token' };
    return { ok: true, capabilities };
  } catch (error) {
    return { ok: false, modulePath, problem: error instanceof Error ? error.message : String(error) };
  }
}

/** Lines for a terminal: the token, the wrap keyward uses on it, its PIN limits and AES mechanisms. */
export function capabilityLines(report: CapabilitiesReport): string[] {
  if (!report.ok) return [`token:        cannot read ${report.modulePath}: ${report.problem}`];
  const c = report.capabilities;
  return [
    `token:        ${c.tokenLabel ?? '-'} in ${c.modulePath}`,
    `wrap:         ${c.wrap ?? 'none usable (keyward needs CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD or CKM_AES_CBC_PAD)'}`,
    `PIN length:   ${c.pinLength ? `${c.pinLength.min ?? '?'}–${c.pinLength.max ?? '?'}` : '-'}`,
    `mechanisms:   ${describeMechanisms(c)}`,
  ];
}
