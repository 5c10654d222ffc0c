import { Writable } from 'node:stream';
import { createLogger, redactLogged } from '../../server/web/logger';

/** The server's logger writing into a string, one JSON object per line. */
function capture(): { lines: () => Record<string, unknown>[]; logger: ReturnType<typeof createLogger> } {
  let text = '';
  const sink = new Writable({ write: (chunk: Buffer, _encoding, done) => ((text += chunk.toString()), done()) });
  return {
    logger: createLogger('info', sink),
    lines: () =>
      text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe('what the server logs: a secret field is replaced, whatever the call passes', () => {
  it('replaces secret fields at the first three levels, in objects and arrays, and keeps the rest', () => {
    const { logger, lines } = capture();
    const error = Object.assign(new Error('the token refused the PIN'), { code: 'CKR_PIN_INCORRECT' });
    logger.info(
      {
        password: 'top-secret-1',
        route: '/login',
        req: { headers: { cookie: 'sid=abc', 'x-csrf-token': 'tok', accept: 'text/html' }, body: { pin: '1234', label: 'L' } },
        res: { headers: { 'set-cookie': ['sid=def'] } },
        forms: [{ passphrase: 'pp', name: 'n' }],
        error,
      },
      'request',
    );
    const [line] = lines();
    expect(line).toMatchObject({
      password: '[redacted]',
      route: '/login',
      req: { headers: { cookie: '[redacted]', 'x-csrf-token': '[redacted]', accept: 'text/html' }, body: { pin: '[redacted]', label: 'L' } },
      res: { headers: { 'set-cookie': '[redacted]' } },
      forms: [{ passphrase: '[redacted]', name: 'n' }],
      error: { message: 'the token refused the PIN', code: 'CKR_PIN_INCORRECT', type: 'Error' },
      msg: 'request',
    });
    expect(JSON.stringify(line)).not.toMatch(/top-secret-1|sid=abc|sid=def|"tok"|1234|"pp"/);
  });

  it('leaves the caller’s object as it was, and returns a clean object itself (nothing copied)', () => {
    const logged = { body: { pin: '1234' } };
    const { logger } = capture();
    logger.info(logged, 'form');
    expect(logged.body.pin).toBe('1234');
    const clean = { method: 'GET', route: '/status', status: 200, nested: { a: { b: 1 } } };
    expect(redactLogged(clean)).toBe(clean);
  });

  it('goes no deeper than the server logs (as the pino paths did: field, *.field, *.*.field)', () => {
    expect(redactLogged({ a: { b: { c: { pin: '1234' } } } })).toEqual({ a: { b: { c: { pin: '1234' } } } });
    expect(redactLogged({ a: { b: { pin: '1234' } } })).toEqual({ a: { b: { pin: '[redacted]' } } });
  });
});
