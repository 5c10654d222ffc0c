import { Transform } from 'node:stream';
import type { Readable, TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MIMEType } from 'node:util';
import busboy from 'busboy';
import type { NextFunction, Request, Response } from 'express';
import type { UploadArea } from './uploads';
import { KeywardError } from '../../errors/keyward-error';

export class MultipartError extends KeywardError {
  constructor(message: string) {
    super('BAD_UPLOAD', message);
    this.name = 'MultipartError';
  }
}

/** A body past its limit: status 413, as the body parsers report it. */
export class BodyTooLargeError extends KeywardError {
  constructor() {
    super('BODY_TOO_LARGE', 'the request body is larger than keyward accepts');
    this.name = 'BodyTooLargeError';
  }
}

export interface UploadedFile {
  field: string;
  /** As the browser named it: shown in messages, never used as a path. */
  filename: string;
  /** The private file in the upload area that holds its content. */
  path: string;
}

export interface MultipartLimits {
  maxParts: number;
  maxFieldBytes: number;
  maxFileBytes: number;
  maxBodyBytes: number;
}

export const MULTIPART_LIMITS: MultipartLimits = { maxParts: 16, maxFieldBytes: 64 * 1024, maxFileBytes: 1024 * 1024, maxBodyBytes: 3 * 1024 * 1024 };

export interface MultipartForm {
  fields: Record<string, string>;
  files: Record<string, UploadedFile>;
}

const FIELD_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * Counts the body against its limit and notes whether the multipart delimiter ever appears (busboy
 * reports a body without one and a body cut short alike).
 */
class BodyMeter extends Transform {
  bytes = 0;
  sawDelimiter = false;
  private tail = Buffer.alloc(0);

  constructor(
    private readonly maxBytes: number,
    private readonly delimiter: Buffer,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) return done(new BodyTooLargeError());
    if (!this.sawDelimiter) {
      const window = Buffer.concat([this.tail, chunk]);
      this.sawDelimiter = window.includes(this.delimiter);
      this.tail = window.subarray(Math.max(0, window.length - this.delimiter.length + 1));
    }
    done(null, chunk);
  }
}

function boundaryOf(contentType: string): string | null {
  try {
    return new MIMEType(contentType).params.get('boundary') || null;
  } catch {
    return null;
  }
}

const ours = (error: unknown) => error instanceof MultipartError || error instanceof BodyTooLargeError;

/** busboy's and the socket's words for a broken body, in keyward's. */
function explain(errors: unknown[], meter: BodyMeter): unknown {
  const error = errors.find(ours) ?? errors.find((e) => e) ?? new MultipartError('the upload is malformed');
  if (ours(error)) return error;
  if ((error as { code?: unknown }).code === 'ECONNRESET') return Object.assign(new Error('the request was aborted'), { status: 400 });
  const message = error instanceof Error ? error.message : '';
  if (/^Unexpected end of (form|file)$/.test(message)) return new MultipartError(meter.sawDelimiter ? 'the upload ends too early' : 'the upload is not a multipart form');
  if (message === 'Malformed part header') return new MultipartError('the upload is malformed');
  return error;
}

/**
 * Streams a multipart/form-data body with limits (a few parts, small fields, files no larger than
 * the form allows): fields are kept as text, each file goes straight to a private file in the upload
 * area, so no file is ever held in memory. On failure every file written is removed.
 */
export async function parseMultipart(body: Readable, contentType: string, limits: MultipartLimits, area: UploadArea): Promise<MultipartForm> {
  const boundary = boundaryOf(contentType);
  if (!boundary) throw new MultipartError('the upload has no multipart boundary');
  const parser = busboy({
    headers: { 'content-type': contentType },
    // busboy flags a part that reaches its limit: one byte more lets a part of exactly the limit through.
    limits: { fieldSize: limits.maxFieldBytes + 1, fileSize: limits.maxFileBytes + 1 },
    preservePath: true,
    defParamCharset: 'utf8',
  });
  const meter = new BodyMeter(limits.maxBodyBytes, Buffer.from(`--${boundary}`));
  // No prototype: a field named like an Object.prototype member is just a field.
  const form: MultipartForm = { fields: Object.create(null) as MultipartForm['fields'], files: Object.create(null) as MultipartForm['files'] };
  const written: string[] = [];
  const receiving: Array<Promise<void>> = [];
  let parts = 0;

  const accept = (name: string | undefined): string => {
    if (name === undefined || !FIELD_NAME.test(name)) throw new MultipartError('an upload part has no usable field name');
    if (++parts > limits.maxParts) throw new MultipartError('the upload has too many parts');
    if (name in form.fields || name in form.files) throw new MultipartError(`the upload has the field "${name}" twice`);
    return name;
  };

  parser.on('field', (rawName, value, info) => {
    try {
      const name = accept(rawName);
      if (info.valueTruncated) throw new MultipartError(`the field "${name}" is too long`);
      form.fields[name] = value;
    } catch (error) {
      parser.destroy(error as Error);
    }
  });

  parser.on('file', (rawName, content, info) => {
    let name: string;
    try {
      name = accept(rawName);
    } catch (error) {
      content.resume();
      parser.destroy(error as Error);
      return;
    }
    content.once('limit', () => content.destroy(new MultipartError(`the file for "${name}" is larger than ${limits.maxFileBytes / 1024} KiB`)));
    receiving.push(
      area.receive(content).then(
        async ({ path, size }) => {
          // A file input left empty is sent as a part with an empty name and no content.
          if (info.filename === undefined && size === 0) return area.discard([path]);
          written.push(path);
          form.files[name] = { field: name, filename: (info.filename ?? '').replace(/[^\x20-\x7e]/g, '?').slice(0, 100), path };
        },
        (error: unknown) => {
          parser.destroy(error as Error);
        },
      ),
    );
  });

  try {
    await pipeline(body, meter, parser);
    await Promise.all(receiving);
    // A failed file destroys the parser after the body may already have been read to its end.
    if (parser.errored) throw parser.errored;
    return form;
  } catch (error) {
    await Promise.allSettled(receiving);
    await area.discard(written);
    throw explain([error, parser.errored], meter);
  }
}

/** Turns a multipart body into req.body (fields) and req.uploads (files, removed once the response is done). */
export function multipartForms(area: UploadArea, limitsFor: (req: Request) => MultipartLimits) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    if (!req.is('multipart/form-data')) return next();
    const limits = limitsFor(req);
    const encoding = req.headers['content-encoding'];
    if (encoding && encoding !== 'identity') throw Object.assign(new Error('an upload is sent without content encoding'), { status: 415 });
    if (Number(req.headers['content-length'] ?? 0) > limits.maxBodyBytes) throw new BodyTooLargeError();
    const { fields, files } = await parseMultipart(req, req.headers['content-type'] ?? '', limits, area);
    res.once('close', () => void area.discard(Object.values(files).map((file) => file.path)));
    req.body = fields;
    req.uploads = files;
    next();
  };
}
