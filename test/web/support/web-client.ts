import { request } from 'node:https';

export interface WebResponse {
  status: number;
  location: string | null;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * A small HTTPS client with a cookie jar, for the tests that need no browser: it follows nothing by
 * itself, so each redirect can be checked. The server's certificate is self-signed: not verified here
 * (the TLS tests compare fingerprints with openssl instead).
 */
export class WebClient {
  readonly cookies = new Map<string, string>();

  constructor(public baseUrl: string) {}

  async get(path: string, headers: Record<string, string> = {}): Promise<WebResponse> {
    return this.send('GET', path, null, headers);
  }

  /** A urlencoded POST; add `_csrf` yourself (or use postForm). */
  async post(path: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<WebResponse> {
    return this.send('POST', path, Buffer.from(new URLSearchParams(fields).toString()), { 'content-type': 'application/x-www-form-urlencoded', ...headers });
  }

  /** GETs `formPage` for a CSRF token, then POSTs the fields with it. */
  async postForm(formPage: string, action: string, fields: Record<string, string>): Promise<WebResponse> {
    const page = await this.get(formPage);
    const token = csrfToken(page.body);
    if (!token) throw new Error(`no CSRF token on ${formPage} (HTTP ${page.status}${page.location ? ` → ${page.location}` : ''})`);
    return this.post(action, { _csrf: token, ...fields });
  }

  /** A multipart POST, encoded as a browser would (FormData through the platform's Request). */
  async postMultipart(formPage: string, action: string, fields: Record<string, string>, files: Record<string, { name: string; data: Buffer }>): Promise<WebResponse> {
    const token = csrfToken((await this.get(formPage)).body);
    if (!token) throw new Error(`no CSRF token on ${formPage}`);
    const form = new FormData();
    form.set('_csrf', token);
    for (const [name, value] of Object.entries(fields)) form.set(name, value);
    for (const [name, file] of Object.entries(files)) form.set(name, new Blob([file.data]), file.name);
    const encoded = new Request('https://localhost/', { method: 'POST', body: form });
    return this.send('POST', action, Buffer.from(await encoded.arrayBuffer()), { 'content-type': encoded.headers.get('content-type')! });
  }

  /** Follows redirects from `path` and returns the last response. */
  async follow(path: string): Promise<WebResponse & { path: string }> {
    let current = path;
    for (let hops = 0; hops < 10; hops++) {
      const response = await this.get(current);
      if (!response.location || response.status < 300 || response.status >= 400) return { ...response, path: current };
      current = new URL(response.location, this.baseUrl).pathname + new URL(response.location, this.baseUrl).search;
    }
    throw new Error(`too many redirects from ${path}`);
  }

  send(method: string, path: string, body: Buffer | null, headers: Record<string, string> = {}): Promise<WebResponse> {
    const url = new URL(path, this.baseUrl);
    const cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          rejectUnauthorized: false,
          agent: false,
          headers: { accept: 'text/html', ...(cookie ? { cookie } : {}), ...(body ? { 'content-length': String(body.length) } : {}), ...headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            for (const line of ([] as string[]).concat(res.headers['set-cookie'] ?? [])) {
              const [pair] = line.split(';');
              const index = pair!.indexOf('=');
              this.cookies.set(pair!.slice(0, index).trim(), pair!.slice(index + 1).trim());
            }
            resolve({
              status: res.statusCode ?? 0,
              location: res.headers.location ? new URL(res.headers.location, url).toString() : null,
              body: Buffer.concat(chunks).toString('utf8'),
              headers: res.headers,
            });
          });
        },
      );
      req.on('error', reject);
      req.end(body ?? undefined);
    });
  }
}

export function csrfToken(html: string): string | null {
  return /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? null;
}

export function fieldError(html: string, field: string): string | null {
  return new RegExp(`id="${field}-error"[^>]*>([^<]*)<`).exec(html)?.[1] ?? null;
}

/** The lifecycle as /status.json reports it (public, like /readyz). */
export async function lifecycleOf(client: WebClient): Promise<{ state: string; wizardState: string | null; accepts: string[]; revision: number; tls: { fingerprintSha256: string } | null }> {
  const response = await client.get('/status.json', { accept: 'application/json' });
  if (response.status !== 200) throw new Error(`/status.json: HTTP ${response.status}`);
  return JSON.parse(response.body) as Awaited<ReturnType<typeof lifecycleOf>>;
}
