import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import express from 'express';
import { LifecycleConflictError } from '../../db/repositories/lifecycle-repository';
import { StoreBehindError } from '../../db/high-water-mark';
import { ValidationError } from '../../db/validation';
import { BackupArchiveError } from '../../backup/archive-errors';
import { DatabaseCopyError } from '../../backup/database-errors';
import { WeakPasswordError } from '../../effects/password-policy';
import { RestoreError } from '../../effects/restore-service';
import { loadScriptExitCodes } from '../../effects/script-exit-codes';
import { TlsInputError } from '../../tls/errors';
import { asKeywardError, ERRORS, ErrorCode, EXIT, EXIT_CODES, KeywardError, scriptErrorCode } from '../../errors/keyward-error';
import { KeyCustodyError } from '../../errors/key-custody-error';
import { EventPayloadError } from '../../machines/events';
import { PROJECT_ROOT } from '../../server/config';
import { StoreMissingError } from '../../server/home-guard';
import { HomeInUseError } from '../../server/home-lock';
import { LifecycleBusyError } from '../../server/lifecycle-engine';
import { SecretMissingError } from '../../server/secret-box';
import { createLogger } from '../../server/web/logger';
import { BodyTooLargeError, MultipartError } from '../../server/web/multipart';
import { NotFoundError, errorHandler, TooManyAttemptsError, WebError } from '../../server/web/web-errors';

/** The one error table: pure checks, no token, database or browser. */

/** The exit codes scripts rely on (docs/cli.md): numbers never change meaning. */
const PUBLIC_EXIT_CODES = [
  'OK',
  'ERROR',
  'USAGE',
  'REFUSED',
  'CONFLICT',
  'REJECTED',
  'STARTUP_REFUSED',
  'STARTUP_FAILED',
  'OUTAGE',
  'AUDIT_BROKEN',
  'ARCHIVE_CORRUPT',
  'WRONG_PASSPHRASE',
  'ARCHIVE_TRUNCATED',
  'MANIFEST_MISMATCH',
  'ARCHIVE_TOO_NEW',
  'NOT_AN_ARCHIVE',
  'OUTPUT_EXISTS',
  'DRILL_FAILED',
  'HOME_IN_USE',
  'STORE_BEHIND',
  'STORE_MISSING',
];

describe('the error table', () => {
  it('keeps every exit number 0–20 with its name', () => {
    expect(Object.entries(EXIT)).toEqual(PUBLIC_EXIT_CODES.map((name, number) => [name, number]));
    for (const { meaning } of Object.values(EXIT_CODES)) expect(meaning.length).toBeGreaterThan(10);
  });

  it('gives every code an exit code, an HTTP status, a title and a plain sentence', () => {
    const codes = Object.keys(ERRORS) as ErrorCode[];
    expect(codes.length).toBeGreaterThan(60);
    for (const code of codes) {
      const { exit, status, title, message } = ERRORS[code];
      expect({ code, exit: EXIT[exit] }).toEqual({ code, exit: expect.any(Number) });
      expect({ code, status: status >= 400 && status <= 599 }).toEqual({ code, status: true });
      expect({ code, title: /^[A-Z][^.]*[A-Za-z#0-9]$/.test(title) }).toEqual({ code, title: true });
      // A sentence for a person: capitalized (or keyward's name), ends with a full stop, and no code in it.
      expect({ code, message: /^([A-Z]|keyward )/.test(message) && /\.$/.test(message) && !/\b[A-Z0-9]+_[A-Z0-9_]+\b/.test(message) }).toEqual({ code, message: true });
    }
  });

  it('maps the archive codes to the exit codes the CLI always gave them', () => {
    const archive: Record<string, number> = {
      ARCHIVE_CORRUPT: 10,
      ARCHIVE_SEGMENTS_REORDERED: 10,
      INVALID_ENTRY_NAME: 10,
      WRONG_PASSPHRASE: 11,
      ARCHIVE_TRUNCATED: 12,
      MANIFEST_MISMATCH: 13,
      MANIFEST_INVALID: 13,
      ARCHIVE_TOO_NEW: 14,
      ARCHIVE_VERSION_UNSUPPORTED: 14,
      SCHEMA_MISMATCH: 14,
      NOT_AN_ARCHIVE: 15,
      WEAK_KDF_PARAMETERS: 15,
      OUTPUT_EXISTS: 16,
      WEAK_PASSWORD: 3,
    };
    for (const [code, exit] of Object.entries(archive)) expect({ code, exit: new KeywardError(code as ErrorCode).exitCode }).toEqual({ code, exit });
  });

  it('is the table docs/cli.md shows', () => {
    const docs = readFileSync(join(PROJECT_ROOT, 'docs', 'cli.md'), 'utf8');
    const section = docs.slice(docs.indexOf('## Exit codes'));
    const rows = [...section.slice(0, section.indexOf('\n\n', section.indexOf('| code |'))).matchAll(/^\| (\d+) \| (.+) \|$/gm)].map((m) => [Number(m[1]), m[2]]);
    expect(rows).toEqual(Object.values(EXIT_CODES).map(({ exit, meaning }) => [exit, meaning]));
  });

  it("maps every name of the token script's table to a code of its own", () => {
    const script = loadScriptExitCodes(join(PROJECT_ROOT, 'scripts')).filter((entry) => entry.name !== 'OK');
    const codes = script.map((entry) => scriptErrorCode(entry.name));
    expect(codes.filter((code) => code === 'SCRIPT_FAILED')).toEqual([]);
    expect(new Set(codes).size).toBe(script.length);
    expect(scriptErrorCode('USAGE')).toBe('TOKEN_SCRIPT_USAGE'); // the script's wrong arguments are not the CLI's
    expect(scriptErrorCode('KILLED')).toBe('SCRIPT_KILLED');
    expect(scriptErrorCode('UNKNOWN')).toBe('SCRIPT_FAILED');
  });
});

describe('every error keyward throws on purpose', () => {
  it('derives from KeywardError: no other class extends Error', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (name.endsWith('.ts') && /\bextends Error\b/.test(readFileSync(path, 'utf8').replace(/^export class KeywardError extends Error\b/m, ''))) offenders.push(relative(PROJECT_ROOT, path));
      }
    };
    for (const dir of ['errors', 'crypto', 'hsm', 'db', 'backup', 'tls', 'effects', 'server', 'machines']) walk(join(PROJECT_ROOT, dir));
    expect(offenders).toEqual([]);
  });

  it('carries its code, exit code and status from the table', () => {
    const cases: Array<[KeywardError, ErrorCode, number, number]> = [
      [new KeyCustodyError('TOKEN_UNREACHABLE', 'the token is not there'), 'TOKEN_UNREACHABLE', EXIT.ERROR, 503],
      [new BackupArchiveError('WRONG_PASSPHRASE', 'the backup passphrase is wrong'), 'WRONG_PASSPHRASE', EXIT.WRONG_PASSPHRASE, 422],
      [new DatabaseCopyError('SCHEMA_MISMATCH', 'tables differ'), 'SCHEMA_MISMATCH', EXIT.ARCHIVE_TOO_NEW, 422],
      [new RestoreError('ARCHIVE_TOO_NEW', 'newer'), 'ARCHIVE_TOO_NEW', EXIT.ARCHIVE_TOO_NEW, 422],
      [new WeakPasswordError('too short'), 'WEAK_PASSWORD', EXIT.REFUSED, 400],
      [new ValidationError('name', 'name is required'), 'INVALID_INPUT', EXIT.REFUSED, 400],
      [new TlsInputError('sans', 'no names'), 'INVALID_TLS_INPUT', EXIT.REFUSED, 400],
      [new EventPayloadError('label', 'label is required'), 'INVALID_PAYLOAD', EXIT.REFUSED, 400],
      [new SecretMissingError('pin'), 'SECRET_MISSING', EXIT.REFUSED, 400],
      [new LifecycleConflictError(3), 'CONFLICT', EXIT.CONFLICT, 409],
      [new LifecycleBusyError({ src: 'setupHsm', owner: { pid: 1, host: 'h' }, startedAt: 'then' } as never), 'BUSY', EXIT.REFUSED, 409],
      [new HomeInUseError('/home', 'pid 1'), 'HOME_IN_USE', EXIT.HOME_IN_USE, 409],
      [new StoreBehindError('behind'), 'STORE_BEHIND', EXIT.STORE_BEHIND, 503],
      [new StoreMissingError('missing'), 'STORE_MISSING', EXIT.STORE_MISSING, 503],
      [new MultipartError('the upload ends too early'), 'BAD_UPLOAD', EXIT.REFUSED, 400],
      [new BodyTooLargeError(), 'BODY_TOO_LARGE', EXIT.REFUSED, 413],
      [new NotFoundError(), 'NOT_FOUND', EXIT.ERROR, 404],
    ];
    for (const [error, code, exit, status] of cases) {
      expect(error).toBeInstanceOf(KeywardError);
      expect({ name: error.name, code: error.code, exit: error.exitCode, status: error.status }).toEqual({ name: error.name, code, exit, status });
    }
  });

  it('says the table sentence when it has none of its own; a damaged SQLite file becomes DATABASE_DAMAGED', () => {
    expect(new WebError('SETUP_LOCKED').message).toBe(ERRORS.SETUP_LOCKED.message);
    const damaged = asKeywardError(Object.assign(new Error('insert into t values (secret) - SQLITE_CORRUPT: database disk image is malformed'), { code: 'SQLITE_CORRUPT' }));
    expect(damaged?.code).toBe('DATABASE_DAMAGED');
    expect(damaged?.exitCode).toBe(EXIT.STARTUP_FAILED);
    expect(damaged?.message).toMatch(/^the database is damaged: SQLITE_CORRUPT: database disk image is malformed\. Start-up failed; nothing was changed/);
    expect(damaged?.message).not.toContain('secret');
    expect(asKeywardError(new Error('plain'))).toBeNull();
  });
});

describe("the web's error page", () => {
  async function respond(error: unknown): Promise<{ status: number; retryAfter: string | null; body: { error: Record<string, unknown> } }> {
    const app = express();
    app.get('/', (_req, _res, next) => next(error));
    app.use(errorHandler(createLogger('silent')));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { headers: { accept: 'application/json' } });
      return { status: response.status, retryAfter: response.headers.get('retry-after'), body: (await response.json()) as { error: Record<string, unknown> } };
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  }

  it('takes the status, the title and the sentence from the table, and shows the code as a detail', async () => {
    const archive = await respond(new BackupArchiveError('ARCHIVE_TRUNCATED', 'segment 4 missing at offset 123'));
    expect(archive.status).toBe(422);
    expect(archive.body.error).toEqual({ status: 422, code: 'ARCHIVE_TRUNCATED', title: ERRORS.ARCHIVE_TRUNCATED.title, message: ERRORS.ARCHIVE_TRUNCATED.message });

    const busy = await respond(new LifecycleBusyError({ src: 'setupHsm', owner: { pid: 1, host: 'h' }, startedAt: 'then' } as never));
    expect(busy.body.error).toEqual({ status: 409, code: 'BUSY', title: 'Busy', message: 'keyward is still carrying out the previous step. Nothing was changed: wait a moment and try again.' });

    const upload = await respond(new MultipartError('the upload ends too early'));
    expect(upload.body.error).toEqual({ status: 400, code: 'BAD_UPLOAD', title: 'Bad upload', message: 'the upload ends too early' });

    const limited = await respond(new TooManyAttemptsError('password', 120));
    expect([limited.status, limited.retryAfter, limited.body.error.code]).toEqual([429, '120', 'TOO_MANY_ATTEMPTS']);
  });

  it("shows an unexpected failure, or a 5xx of keyward's own, only by an incident id", async () => {
    const unexpected = await respond(new Error('select secret from t - boom'));
    expect(unexpected.status).toBe(500);
    expect(unexpected.body.error.code).toBe('INTERNAL');
    expect(unexpected.body.error.message).toMatch(/^keyward could not complete this request \(incident [0-9a-f]{12} in its log\)\.$/);
    const token = await respond(new KeyCustodyError('TOKEN_UNREACHABLE', 'slot 3 of /usr/lib/module.so'));
    expect(token.status).toBe(503);
    expect(token.body.error.message).toMatch(/^The token cannot be reached now \(incident [0-9a-f]{12} in its log\)\.$/);
  });
});
