import { canonicalJson } from '../../db/audit-chain';
import { decodeBase64Strict } from '../../crypto/base64';
import { lockoutDelayMs } from '../../machines/lifecycle-machine';
import { redact } from '../../server/redact';

/** The small pure rules the slower tests lean on, each on its own. */
describe('canonical JSON (what the transition log hashes)', () => {
  it('sorts keys at every depth, drops undefined, keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[3,{"y":2,"z":1}]},"b":1}');
    expect(canonicalJson({ a: 1, b: 2 })).toBe(canonicalJson({ b: 2, a: 1 }));
    expect(canonicalJson([undefined, null, 'é'])).toBe('[null,null,"é"]');
  });
});

describe('strict base64 (a tampered stored value does not decode)', () => {
  it('decodes canonical base64 and refuses every other spelling of the same bytes', () => {
    expect(decodeBase64Strict('AAEC/w==')).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(decodeBase64Strict('')).toEqual(Buffer.alloc(0));
    for (const text of ['AAEC_w==', 'AAEC-w==', 'AAEC/x==', 'AAE', 'AA EC/w==', 'AAEC/w=', 'AAEC*w==']) expect([text, decodeBase64Strict(text)]).toEqual([text, null]);
  });

  it("decodes into a caller's scratch buffer alike", () => {
    const scratch = Buffer.alloc(16);
    expect(decodeBase64Strict('AAEC/w==', scratch)).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(decodeBase64Strict('AAEC/x==', scratch)).toBeNull();
  });
});

describe('the backup-password lockout delay', () => {
  it('is nothing for two failures, 30 s at the third, doubling, capped at one hour', () => {
    expect([0, 1, 2, 3, 4, 5, 9, 10, 50].map(lockoutDelayMs)).toEqual([0, 0, 0, 30_000, 60_000, 120_000, 1_920_000, 3_600_000, 3_600_000]);
  });
});

describe('redaction of what is logged or persisted', () => {
  it('replaces every field whose name says it is a secret, at any depth, and keeps the rest', () => {
    const payload = { storageType: 'softhsm', pin: '1234', nested: [{ soPin: 'x', label: 'L' }, { backupPassword: 'y' }], private_key: 'k', dek: 'd', tokenValue: 't', deks: 'kept' };
    expect(redact(payload)).toEqual({
      storageType: 'softhsm',
      pin: '[redacted]',
      nested: [{ soPin: '[redacted]', label: 'L' }, { backupPassword: '[redacted]' }],
      private_key: '[redacted]',
      dek: '[redacted]',
      tokenValue: '[redacted]',
      deks: 'kept',
    });
    expect(redact('a string')).toBe('a string');
  });
});
