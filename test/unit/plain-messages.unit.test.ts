import { deviceAuditHash, GENESIS, verifyDeviceAudit, type DeviceAuditEntry } from '../../db/device-audit';
import { pinLengthRefusal } from '../../effects/token-setup';
import { ERRORS } from '../../errors/keyward-error';
import { keySizes } from '../../hsm/key-sizes';
import { sentence, withLabels } from '../../server/web/field-labels';
import { covers, requestHost, tlsWarnings } from '../../server/web/tls-warnings';

describe('field names become the form’s labels', () => {
  it('names the field as its label where it opens the message, and camelCase names anywhere', () => {
    expect(withLabels('estPassword is longer than 128 characters')).toBe('EST password is longer than 128 characters');
    expect(withLabels('modulePath must be an absolute path to a PKCS#11 library')).toBe('PKCS#11 module path must be an absolute path to a PKCS#11 library');
    expect(withLabels('label must be 1–32 printable ASCII characters')).toBe('Token label must be 1–32 printable ASCII characters');
    expect(withLabels('SETUP_HSM needs the secret(s) soPin (on stdin or in a file, never as an argument)')).toBe(
      'SETUP_HSM needs the secret(s) security officer (SO) PIN (on stdin or in a file, never as an argument)',
    );
    expect(withLabels('the cmpSharedSecret is too long')).toBe('the CMP shared secret is too long');
  });

  it('leaves plain words and unknown names alone', () => {
    expect(withLabels('No token has this label.')).toBe('No token has this label.');
    expect(withLabels('the backup password is wrong')).toBe('the backup password is wrong');
    expect(withLabels('someField is odd')).toBe('someField is odd');
    expect(withLabels('name is required', { name: 'Device name' })).toBe('Device name is required');
  });

  it('makes a sentence of a message', () => {
    expect(sentence('a device named "x" exists already')).toBe('A device named "x" exists already.');
    expect(sentence('The PIN is longer than this token allows (at most 255 characters)')).toBe('The PIN is longer than this token allows (at most 255 characters)');
    expect(sentence('  ')).toBe('');
  });

  it('says which PIN is outside the token’s limits, and marks its field', () => {
    expect(pinLengthRefusal('PIN_TOO_LONG', 'at most 255 characters for the user PIN', 'Trustpoint-SoftHSM')).toEqual({
      message: 'The user PIN is longer than this token allows (at most 255 characters). Nothing was changed on the token "Trustpoint-SoftHSM".',
      field: 'pin',
    });
    expect(pinLengthRefusal('PIN_TOO_SHORT', 'at least 4 characters for the SO PIN', 'T')).toEqual({
      message: 'The SO PIN is shorter than this token allows (at least 4 characters). Nothing was changed on the token "T".',
      field: 'soPin',
    });
    expect(pinLengthRefusal('INIT_TOKEN_FAILED', 'at most 255 characters for the user PIN', 'T')).toBeNull();
    expect(pinLengthRefusal('PIN_TOO_LONG', 'something else', 'T')).toBeNull();
  });

  it('titles the PIN length refusals by what they are, not as a failed set-up', () => {
    expect(ERRORS.PIN_TOO_LONG.title).toBe('PIN too long');
    expect(ERRORS.PIN_TOO_SHORT.title).toBe('PIN too short');
    expect(ERRORS.PIN_TOO_LONG.message).toMatch(/^The PIN is longer than this token allows\. Nothing was changed/);
  });
});

describe('key sizes as a person reads them', () => {
  it('says "any size" for a bound a module does not really set', () => {
    expect(keySizes(16, 2147483648)).toBe('keys of any size from 16 bytes');
    expect(keySizes(16, 32)).toBe('keys 16–32');
    expect(keySizes(0, 0)).toBe('any key size');
  });
});

describe('TLS credential warnings before applying', () => {
  const now = Date.parse('2026-12-07T12:00:00Z');
  const inDays = (days: number) => new Date(now + days * 86_400_000).toISOString();
  const hosts = { request: '127.0.0.1', configured: ['localhost', '127.0.0.1'] };

  it('matches DNS names (one leftmost wildcard label) and IP addresses', () => {
    expect(covers(['DNS:keyward.example'], 'KEYWARD.example.')).toBe(true);
    expect(covers(['DNS:*.example'], 'keyward.example')).toBe(true);
    expect(covers(['DNS:*.example'], 'a.b.example')).toBe(false);
    expect(covers(['DNS:*.example'], 'example')).toBe(false);
    expect(covers(['IP:127.0.0.1'], '127.0.0.1')).toBe(true);
    expect(covers(['DNS:127.0.0.1'], '127.0.0.1')).toBe(false);
    expect(covers(['IP:::1'], '[::1]')).toBe(true);
    expect(requestHost('127.0.0.1:8443')).toBe('127.0.0.1');
    expect(requestHost('[::1]:8443')).toBe('[::1]');
    expect(requestHost(undefined)).toBeNull();
  });

  it('warns of names the certificate misses, the request’s first', () => {
    const warnings = tlsWarnings({ subjectAltNames: ['DNS:other.example'], notAfter: inDays(365) }, hosts, now);
    expect(warnings).toEqual([
      'This certificate does not name “127.0.0.1” (the name this browser uses for keyward now), “localhost”: browsers that reach keyward by those names will refuse the connection after it is applied.',
    ]);
  });

  it('warns of an end within 30 days, and of none for a covering, long-lived certificate', () => {
    const covering = ['DNS:localhost', 'IP:127.0.0.1'];
    expect(tlsWarnings({ subjectAltNames: covering, notAfter: inDays(20.5) }, hosts, now)).toEqual([
      `This certificate expires on ${inDays(20.5).slice(0, 10)} (in 20 days): plan its replacement now.`,
    ]);
    expect(tlsWarnings({ subjectAltNames: covering, notAfter: inDays(31) }, hosts, now)).toEqual([]);
    expect(tlsWarnings({ subjectAltNames: covering, notAfter: inDays(-1) }, hosts, now)[0]).toMatch(/expired on/);
  });
});

describe('the device audit chain', () => {
  const chain = (): DeviceAuditEntry[] => {
    const entries: DeviceAuditEntry[] = [];
    let prevHash = GENESIS;
    for (const [seq, action] of [
      [1, 'created'],
      [2, 'estPassword regenerated'],
      [3, 'deleted'],
    ] as const) {
      const entry = { seq, deviceId: 7, deviceName: 'router-1', actor: 'web:admin', action, detail: '', at: `2026-12-07T12:00:0${seq}Z` };
      const hash = deviceAuditHash(prevHash, entry);
      entries.push({ ...entry, prevHash, hash });
      prevHash = hash;
    }
    return entries;
  };

  it('verifies an intact chain and names the first altered, missing or reordered entry', () => {
    expect(verifyDeviceAudit(chain())).toEqual({ ok: true, entries: 3, firstBroken: null });
    const altered = chain();
    altered[1] = { ...altered[1]!, actor: 'web:someone-else' };
    expect(verifyDeviceAudit(altered).firstBroken).toEqual({ seq: 2, message: 'entry 2 was altered: its content does not match its hash' });
    const missing = chain().filter((e) => e.seq !== 2);
    expect(verifyDeviceAudit(missing).firstBroken?.message).toBe('entry 2 is missing (deleted?)');
    const [a, b, c] = chain();
    expect(verifyDeviceAudit([a!, { ...c!, seq: 2 }, { ...b!, seq: 3 }]).ok).toBe(false);
  });
});
