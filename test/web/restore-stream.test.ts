import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SERVER_YOUNG_GENERATION_BYTES } from '../../server/young-generation';
import { peakRssKiB, residentKiB } from '../support/kdf-bomb';
import { newSecret } from '../support/secrets';
import { step, unlock } from './support/http-wizard';
import { KeywardServer } from './support/keyward-server';
import { fieldError, lifecycleOf, WebClient } from './support/web-client';

jest.setTimeout(120_000);

const MiB = 1024 * 1024;

/** The server's young generation as its /metrics reports it (prom-client's heap space gauge). */
async function youngGenerationBytes(client: WebClient): Promise<number> {
  const metrics = (await client.get('/metrics')).body;
  const line = /^nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)$/m.exec(metrics);
  if (!line) throw new Error('/metrics reports no young generation size');
  return Number(line[1]);
}

/**
 * Issue 10 item 4: the restore upload streams to disk. A 60 MiB archive sent to the set-up-mode page
 * keeps the server's resident memory within 30 MB of what it uses idle, sampled from /proc while the
 * body arrives (VmRSS) and checked against its peak afterwards (VmHWM). The archive is not one keyward
 * wrote: it is refused, and nothing of it stays on disk.
 */
describe('web: a large restore upload', () => {
  const server = new KeywardServer('restore-stream');
  const passphrase = `Pp-${newSecret('stream-passphrase')}`;
  let client: WebClient;

  afterAll(async () => {
    await server.stop();
  });

  it('is streamed to disk: the server stays within 30 MB of idle while 60 MiB arrive', async () => {
    await server.start();
    client = new WebClient(server.url);
    await unlock(client, await server.setupCode());
    expect(await step(client, '/setup-wizard/crypto-storage-setup/', { storageType: 'software' })).toBe('/setup-wizard/setup_mode/');
    const before = await lifecycleOf(client);
    const upload = (data: Buffer) => client.postMultipart('/setup-wizard/setup_mode/', '/setup-wizard/restore/', { passphrase }, { archive: { name: 'large.kwbak', data } });

    // A small upload first, so that "idle" is a server that has already handled one; then pages until
    // its young generation has grown as far as a serving keyward lets it (the spent chunks it may hold).
    expect((await upload(randomBytes(64 * 1024))).status).toBe(400);
    for (let pages = 0; (await youngGenerationBytes(client)) < SERVER_YOUNG_GENERATION_BYTES; pages += 100) {
      expect(pages).toBeLessThan(20_000);
      for (let i = 0; i < 100; i++) expect((await client.get('/setup-wizard/setup_mode/')).status).toBe(200);
    }
    const idleKiB = residentKiB(server.pid);
    const peakBeforeKiB = peakRssKiB(server.pid);

    const samples: number[] = [];
    const sampler = setInterval(() => samples.push(residentKiB(server.pid)), 5);
    let refused;
    try {
      refused = await upload(randomBytes(60 * MiB));
    } finally {
      clearInterval(sampler);
    }
    samples.push(residentKiB(server.pid));

    expect(refused.status).toBe(400);
    expect(fieldError(refused.body, 'archive')).toMatch(/not a keyward backup archive/);
    expect(samples.length).toBeGreaterThan(3);
    const limitKiB = idleKiB + (30 * 1000 * 1000) / 1024;
    expect(Math.max(...samples)).toBeLessThan(limitKiB);
    // Between two samples too: the peak did not pass the limit unless start-up had already passed it.
    expect(peakRssKiB(server.pid)).toBeLessThanOrEqual(Math.max(peakBeforeKiB, limitKiB));

    expect((await lifecycleOf(client)).state).toBe(before.state);
    expect(readdirSync(join(server.home, 'uploads'))).toEqual([]);
  });

  it('removes what it stored when the form is refused after its body was read (no CSRF token)', async () => {
    // The set-up session of the test above: its body is read, then the CSRF check refuses it.
    const form = new FormData();
    form.set('passphrase', passphrase);
    form.set('archive', new Blob([randomBytes(256 * 1024)]), 'forged.kwbak');
    const encoded = new Request('https://localhost/', { method: 'POST', body: form });
    const forged = await client.send('POST', '/setup-wizard/restore/', Buffer.from(await encoded.arrayBuffer()), { 'content-type': encoded.headers.get('content-type')! });
    expect(forged.status).toBe(403);
    // Removed when the response ends, which the client may see first: wait a little for it.
    const uploads = join(server.home, 'uploads');
    for (const deadline = Date.now() + 2000; readdirSync(uploads).length > 0 && Date.now() < deadline;) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(readdirSync(uploads)).toEqual([]);
  });
});
