import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BodyTooLargeError, MULTIPART_LIMITS, MultipartError, parseMultipart } from '../../server/web/multipart';
import { UploadArea } from '../../server/web/uploads';
import { testDir } from '../support/run-dir';

const BOUNDARY = '----keyward-test-boundary';
const TYPE = `multipart/form-data; boundary=${BOUNDARY}`;

function body(parts: Array<{ name: string; filename?: string; content: string | Buffer }>, closing = true): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename !== undefined ? `; filename="${part.filename}"` : ''}`;
    chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: ${disposition}\r\n${part.filename !== undefined ? 'Content-Type: application/octet-stream\r\n' : ''}\r\n`));
    chunks.push(Buffer.isBuffer(part.content) ? part.content : Buffer.from(part.content));
    chunks.push(Buffer.from('\r\n'));
  }
  if (closing) chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

/** The bounded, streaming multipart parser behind the TLS file uploads and the restore upload. */
describe('web: multipart forms', () => {
  const dir = join(testDir('multipart'), 'uploads');
  const area = new UploadArea(dir);
  // Delivered in small chunks, as from a socket: delimiters and limits fall across chunk boundaries.
  const parse = (bytes: Buffer, type: string) =>
    parseMultipart(Readable.from(Array.from({ length: Math.ceil(bytes.length / 7) }, (_, i) => bytes.subarray(i * 7, i * 7 + 7))), type, MULTIPART_LIMITS, area);

  it('reads fields and files, binary content intact, an empty file input ignored', async () => {
    const binary = Buffer.from([0, 1, 2, 13, 10, 45, 45, 255]);
    const parsed = await parse(
      body([
        { name: '_csrf', content: 'token.value' },
        { name: 'format', content: 'pkcs12' },
        { name: 'pkcs12File', filename: 'server.p12', content: binary },
        { name: 'chainFile', filename: '', content: '' },
      ]),
      TYPE,
    );
    expect(parsed.fields).toEqual({ _csrf: 'token.value', format: 'pkcs12' });
    expect(Object.keys(parsed.files)).toEqual(['pkcs12File']);
    expect(parsed.files.pkcs12File!.filename).toBe('server.p12');
    expect(readFileSync(parsed.files.pkcs12File!.path).equals(binary)).toBe(true);
    expect(readdirSync(dir)).toEqual([parsed.files.pkcs12File!.path.split('/').pop()]);
    await area.discard([parsed.files.pkcs12File!.path]);
  });

  it('refuses what it cannot read safely, with a message and nothing else', async () => {
    const cases: Array<[Buffer, string, RegExp]> = [
      [body([{ name: 'a', content: 'x' }]), 'multipart/form-data', /no multipart boundary/],
      [body([{ name: 'a', content: 'x' }], false), TYPE, /ends too early/],
      [
        body([
          { name: 'a', content: 'x' },
          { name: 'a', content: 'y' },
        ]),
        TYPE,
        /field "a" twice/,
      ],
      [body([{ name: 'bad name', content: 'x' }]), TYPE, /no usable field name/],
      [body([{ name: 'f', filename: 'big', content: Buffer.alloc(1024 * 1024 + 1) }]), TYPE, /larger than 1024 KiB/],
      [body(Array.from({ length: 17 }, (_, i) => ({ name: `f${i}`, content: 'x' }))), TYPE, /too many parts/],
      [Buffer.from('no delimiter at all'), TYPE, /not a multipart form/],
    ];
    for (const [bytes, type, message] of cases) {
      await expect(parse(bytes, type)).rejects.toThrow(MultipartError);
      await expect(parse(bytes, type)).rejects.toThrow(message);
      // Not even the part of a file that was read stays behind.
      expect(readdirSync(dir)).toEqual([]);
    }
  });

  it('takes a file of exactly its limit; refuses a body past its limit as 413, keeping nothing', async () => {
    const exact = await parse(body([{ name: 'f', filename: 'exact', content: Buffer.alloc(1024 * 1024, 7) }]), TYPE);
    expect(readFileSync(exact.files.f!.path)).toHaveLength(1024 * 1024);
    await area.discard([exact.files.f!.path]);

    const large = body([
      { name: 'a', filename: 'a', content: Buffer.alloc(1024 * 1024) },
      { name: 'b', filename: 'b', content: Buffer.alloc(1024 * 1024) },
      { name: 'c', filename: 'c', content: Buffer.alloc(1024 * 1024) },
    ]);
    const refused = parse(large, TYPE);
    await expect(refused).rejects.toThrow(BodyTooLargeError);
    await expect(refused).rejects.toMatchObject({ status: 413 });
    expect(readdirSync(dir)).toEqual([]);
  });
});
