import type { NextFunction, Request, Response } from 'express';

export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MultipartError';
  }
}

export interface UploadedFile {
  field: string;
  /** As the browser named it: shown in messages, never used as a path. */
  filename: string;
  data: Buffer;
}

export interface MultipartLimits {
  maxParts: number;
  maxFieldBytes: number;
  maxFileBytes: number;
}

export const MULTIPART_LIMITS: MultipartLimits = { maxParts: 16, maxFieldBytes: 64 * 1024, maxFileBytes: 1024 * 1024 };

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');
const FIELD_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

function boundaryOf(contentType: string): string {
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  if (!boundary) throw new MultipartError('the upload has no multipart boundary');
  return boundary;
}

function dispositionOf(headers: string): { name: string; filename: string | null } {
  const line = headers.split('\r\n').find((h) => /^content-disposition:/i.test(h));
  if (!line || !/^content-disposition:\s*form-data/i.test(line)) throw new MultipartError('an upload part is not form data');
  const name = /;\s*name="([^"]*)"/i.exec(line)?.[1];
  if (name === undefined || !FIELD_NAME.test(name)) throw new MultipartError('an upload part has no usable field name');
  const filename = /;\s*filename="([^"]*)"/i.exec(line)?.[1] ?? null;
  return { name, filename };
}

/**
 * A multipart/form-data body that is already in memory (its size bounded by the body parser), parsed
 * with limits: a few parts, small fields, files no larger than a TLS credential file can be.
 */
export function parseMultipart(body: Buffer, contentType: string, limits: MultipartLimits = MULTIPART_LIMITS): { fields: Record<string, string>; files: Record<string, UploadedFile> } {
  const delimiter = Buffer.from(`--${boundaryOf(contentType)}`);
  const fields: Record<string, string> = Object.create(null);
  const files: Record<string, UploadedFile> = Object.create(null);
  let position = body.indexOf(delimiter);
  if (position < 0) throw new MultipartError('the upload is not a multipart form');
  let parts = 0;
  for (;;) {
    position += delimiter.length;
    if (body.subarray(position, position + 2).toString('latin1') === '--') break; // the closing delimiter
    if (!body.subarray(position, position + 2).equals(CRLF)) throw new MultipartError('the upload is malformed');
    position += 2;
    const headerEnd = body.indexOf(HEADER_END, position);
    if (headerEnd < 0 || headerEnd - position > 4096) throw new MultipartError('the upload is malformed');
    const { name, filename } = dispositionOf(body.subarray(position, headerEnd).toString('utf8'));
    const contentStart = headerEnd + HEADER_END.length;
    const next = body.indexOf(Buffer.concat([CRLF, delimiter]), contentStart);
    if (next < 0) throw new MultipartError('the upload ends too early');
    const content = body.subarray(contentStart, next);
    if (++parts > limits.maxParts) throw new MultipartError('the upload has too many parts');
    if (name in fields || name in files) throw new MultipartError(`the upload has the field "${name}" twice`);
    if (filename !== null) {
      if (content.length > limits.maxFileBytes) throw new MultipartError(`the file for "${name}" is larger than ${limits.maxFileBytes / 1024} KiB`);
      // A file input left empty is sent as a part with an empty name and no content.
      if (filename !== '' || content.length > 0) files[name] = { field: name, filename: filename.replace(/[^\x20-\x7e]/g, '?').slice(0, 100), data: Buffer.from(content) };
    } else {
      if (content.length > limits.maxFieldBytes) throw new MultipartError(`the field "${name}" is too long`);
      fields[name] = content.toString('utf8');
    }
    position = next + CRLF.length;
  }
  return { fields, files };
}

/** After express.raw: turns a multipart body into req.body (fields) and req.uploads (files). */
export function multipartFields(limitsFor: (req: Request) => MultipartLimits = () => MULTIPART_LIMITS) {
  return (req: Request, _res: Response, next: NextFunction): void => {
    if (!req.is('multipart/form-data')) return next();
    try {
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const { fields, files } = parseMultipart(body, req.headers['content-type'] ?? '', limitsFor(req));
      req.body = fields;
      req.uploads = files;
      next();
    } catch (error) {
      next(error);
    }
  };
}
