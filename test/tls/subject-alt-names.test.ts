import { TlsInputError, parseSubjectAltNames } from '../../tls';
import { formatIp, ipToBytes } from '../../tls/subject-alt-names';

function rejection(input: string | string[]): TlsInputError {
  try {
    parseSubjectAltNames(input);
  } catch (error) {
    expect(error).toBeInstanceOf(TlsInputError);
    expect((error as TlsInputError).field).toBe('subjectAltNames');
    return error as TlsInputError;
  }
  throw new Error(`${JSON.stringify(input)} was accepted`);
}

describe('parseSubjectAltNames', () => {
  it('takes a comma separated line of bare and prefixed names', () => {
    expect(parseSubjectAltNames('localhost, 127.0.0.1, DNS:x, IP:::1')).toEqual(['DNS:localhost', 'IP:127.0.0.1', 'DNS:x', 'IP:::1']);
  });

  it('takes names pasted from openssl or Node output', () => {
    expect(parseSubjectAltNames('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1')).toEqual(['DNS:localhost', 'IP:127.0.0.1', 'IP:::1']);
  });

  it('takes one name per line, with CRLF and blank lines', () => {
    expect(parseSubjectAltNames('pki.example.com\r\n\r\n  10.0.0.5  \n*.pki.example.com\n')).toEqual(['DNS:pki.example.com', 'IP:10.0.0.5', 'DNS:*.pki.example.com']);
  });

  it('takes an array, each element possibly a list itself', () => {
    expect(parseSubjectAltNames(['a.example', 'b.example, 192.168.1.1'])).toEqual(['DNS:a.example', 'DNS:b.example', 'IP:192.168.1.1']);
  });

  it('normalizes case, trailing dots, prefixes and IPv6 spellings, then drops duplicates', () => {
    expect(
      parseSubjectAltNames(['PKI.Example.COM', 'dns:pki.example.com.', 'ip: 0:0:0:0:0:0:0:1', '[::1]', '2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1', 'fe80:0:0:0:0:0:0:0', '::ffff:192.0.2.1']),
    ).toEqual(['DNS:pki.example.com', 'IP:::1', 'IP:2001:db8::1:0:0:1', 'IP:fe80::', 'IP:::ffff:c000:201']);
  });

  it('writes IPv6 as RFC 5952 says: the longest zero run compressed, the first of equal runs, no single-group ::', () => {
    const canonical = (text: string) => formatIp(ipToBytes(text)!);
    expect(canonical('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonical('2001:0:0:1:0:0:0:1')).toBe('2001:0:0:1::1');
    expect(canonical('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1');
    expect(canonical('::')).toBe('::');
    expect(canonical('1::')).toBe('1::');
    expect(canonical('10.1.2.3')).toBe('10.1.2.3');
    // IPv4-compatible (deprecated) and IPv4-mapped are different addresses.
    expect(canonical('::1.2.3.4')).toBe('::102:304');
    expect(canonical('::ffff:1.2.3.4')).toBe('::ffff:102:304');
    expect(canonical('64:ff9b::192.0.2.1')).toBe('64:ff9b::c000:201');
  });

  it('accepts labels of 63 characters, names of 253, digits and inner hyphens, xn-- labels', () => {
    const label63 = 'a'.repeat(63);
    const long = [label63, label63, label63, 'b'.repeat(61)].join('.');
    expect(long).toHaveLength(253);
    expect(parseSubjectAltNames([long, '1st-host.example', 'xn--bcher-kva.example'])).toEqual([`DNS:${long}`, 'DNS:1st-host.example', 'DNS:xn--bcher-kva.example']);
  });

  it.each([
    ['', /at least one/],
    [' , \n ,', /at least one/],
    [[], /at least one/],
    ['-bad.example', /not a valid DNS name/],
    ['bad-.example', /not a valid DNS name/],
    ['under_score.example', /not a valid DNS name/],
    ['a..example', /not a valid DNS name/],
    ['foo.*.example', /not a valid DNS name/],
    ['*foo.example', /not a valid DNS name/],
    ['*', /not a valid DNS name/],
    [`${'a'.repeat(64)}.example`, /not a valid DNS name/],
    [Array.from({ length: 4 }, () => 'a'.repeat(63)).join('.'), /1 to 253/],
    ['bücher.example', /xn-- form/],
    ['256.1.1.1', /neither an IP address nor a DNS name/],
    ['1.2.3', /neither an IP address nor a DNS name/],
    ['01.2.3.4', /neither an IP address nor a DNS name/],
    ['IP:example.com', /not an IPv4 or IPv6 address/],
    ['IP Address:localhost', /not an IPv4 or IPv6 address/],
    ['IP:1.2.3.4.5', /not an IPv4 or IPv6 address/],
    ['IP:fe80::1%eth0', /not an IPv4 or IPv6 address/],
    ['IP:1:2:3:4:5:6:7:8:9', /not an IPv4 or IPv6 address/],
    ['DNS:', /no value/],
    ['has space.example', /not a valid DNS name/],
    ['https://pki.example.com', /not a valid DNS name/],
  ])('refuses %j', (input, message) => {
    expect(rejection(input).message).toMatch(message);
  });

  it('refuses more than 100 names', () => {
    const names = Array.from({ length: 101 }, (_, i) => `host${i}.example`);
    expect(rejection(names).message).toMatch(/more than the 100/);
    expect(parseSubjectAltNames(names.slice(0, 100))).toHaveLength(100);
  });

  it('quotes a long bad value shortened, not whole', () => {
    const message = rejection(`${'x'.repeat(500)}_`).message;
    expect(message.length).toBeLessThan(400);
  });
});
