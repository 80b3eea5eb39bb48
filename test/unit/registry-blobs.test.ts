/**
 * Blob transfer behaviour of RegistryClient against throwaway node:http servers on 127.0.0.1:
 * Range resume, redirects, the transfer semaphore, and the upload steps.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/digest/digest.js';
import { AirlockError } from '../../src/errors.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { RegistryClient, type RegistryOptions } from '../../src/registry/client.js';
import { Semaphore } from '../../src/sync/semaphore.js';
import { listenLocal } from '../support/listen.js';

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;
interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  bodyLength: number;
}
interface Fixture {
  host: string;
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

const open: Fixture[] = [];
const clients: RegistryClient[] = [];

/** A server that reads each request body, records the request, then calls `handler`. `/v2/` answers 200. */
async function serve(handler: Handler): Promise<Fixture> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyLength: body.length });
      if (req.url === '/v2/') {
        res.writeHead(200, { 'content-length': 2 }).end('{}');
        return;
      }
      handler(req, res, body);
    });
  });
  const { host, close } = await listenLocal(server);
  const f = { host, url: `http://${host}`, seen, close };
  open.push(f);
  return f;
}

function client(host: string, options: Partial<RegistryOptions> = {}): RegistryClient {
  const c = new RegistryClient(host, {
    plainHttp: true,
    userAgent: 'airlock-test',
    certsDirs: [],
    authFiles: [],
    retry: { sleep: async () => {}, baseDelayMs: 1 },
    ...options,
  });
  clients.push(c);
  return c;
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(open.splice(0).map((f) => f.close()));
});

const blob = randomBytes(3 * 1024 * 1024 + 17);
const desc: Descriptor = { mediaType: 'application/octet-stream', digest: sha256Digest(blob), size: blob.length };

/** Serve `blob` honouring `Range: bytes=N-` unless told otherwise. */
function sendBlob(req: IncomingMessage, res: ServerResponse, opts: { ignoreRange?: boolean; cutAfter?: number; shortLength?: boolean } = {}): void {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = m !== null && opts.ignoreRange !== true ? Number(m[1]) : 0;
  const part = blob.subarray(start);
  const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream' };
  headers['content-length'] = opts.shortLength === true ? Math.floor(part.length / 2) : part.length;
  if (start > 0) headers['content-range'] = `bytes ${start}-${blob.length - 1}/${blob.length}`;
  res.writeHead(start > 0 ? 206 : 200, headers);
  if (opts.cutAfter !== undefined) {
    res.write(part.subarray(0, opts.cutAfter), () => setTimeout(() => req.socket.destroy(), 20));
    return;
  }
  res.end(opts.shortLength === true ? part.subarray(0, Math.floor(part.length / 2)) : part);
}

async function failure(p: Promise<unknown>): Promise<AirlockError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AirlockError);
  return err as AirlockError;
}

describe('openBlob', () => {
  it('resumes with a Range request when the connection breaks mid-body', async () => {
    let n = 0;
    const f = await serve((req, res) => sendBlob(req, res, n++ === 0 ? { cutAfter: 1024 * 1024 } : {}));
    const got = await buffer(await client(f.host).openBlob('a', desc));
    expect(got.equals(blob)).toBe(true);
    const gets = f.seen.filter((s) => s.method === 'GET' && s.url.includes('/blobs/'));
    expect(gets).toHaveLength(2);
    expect(gets[0]?.headers.range).toBeUndefined();
    expect(Number(/bytes=(\d+)-/.exec(gets[1]?.headers.range ?? '')?.[1])).toBeGreaterThanOrEqual(1024 * 1024 - 64 * 1024);
  });

  it('skips the delivered prefix when the server ignores Range and sends 200', async () => {
    let n = 0;
    const f = await serve((req, res) => sendBlob(req, res, n++ === 0 ? { cutAfter: 500_000 } : { ignoreRange: true }));
    expect((await buffer(await client(f.host).openBlob('a', desc))).equals(blob)).toBe(true);
  });

  it('resumes a body that ends short of the descriptor size', async () => {
    let n = 0;
    const f = await serve((req, res) => sendBlob(req, res, n++ === 0 ? { shortLength: true } : {}));
    expect((await buffer(await client(f.host).openBlob('a', desc))).equals(blob)).toBe(true);
    expect(f.seen.filter((s) => s.url.includes('/blobs/'))).toHaveLength(2);
  });

  it('gives up with NETWORK after the retries when every attempt breaks without progress', async () => {
    const f = await serve((req) => req.socket.destroy());
    const c = client(f.host, { retry: { sleep: async () => {}, retries: 2 } });
    expect((await failure(c.openBlob('a', desc))).code).toBe('NETWORK');
  });

  it('reports a blob shorter than its descriptor (416 on resume) as INTEGRITY', async () => {
    const f = await serve((req, res) => {
      if (req.headers.range !== undefined) return res.writeHead(416, { 'content-length': 0 }).end();
      res.writeHead(200, { 'content-length': 10 }).end(blob.subarray(0, 10));
    });
    const stream = await client(f.host).openBlob('a', desc);
    const err = await buffer(stream).catch((e: unknown) => e);
    expect((err as AirlockError).code).toBe('INTEGRITY');
  });

  it('follows a redirect to another host without sending Authorization there, keeping Range', async () => {
    const storage = await serve((req, res) => sendBlob(req, res));
    const basic = `Basic ${Buffer.from('u:p').toString('base64')}`;
    const registry = await serve((req, res) => {
      if (req.headers.authorization !== basic) return res.writeHead(401, { 'www-authenticate': 'Basic realm="r"', 'content-length': 0 }).end();
      res.writeHead(307, { location: `${storage.url}/bucket/blob?sig=1`, 'content-length': 0 }).end();
    });
    const c = client(registry.host, { credentials: { username: 'u', password: 'p' } });
    expect((await buffer(await c.openBlob('a', desc))).equals(blob)).toBe(true);
    expect(storage.seen).toHaveLength(1);
    expect(storage.seen[0]?.headers.authorization).toBeUndefined();
    expect(registry.seen.at(-1)?.headers.authorization).toBe(basic);
  });

  it('reports a missing blob as NOT_FOUND naming the digest', async () => {
    const f = await serve((_req, res) => res.writeHead(404, { 'content-length': 0 }).end());
    const err = await failure(client(f.host).openBlob('a', desc));
    expect([err.code, err.message]).toEqual(['NOT_FOUND', `blob ${desc.digest} of a not found on ${f.host}`]);
  });

  it('holds at most maxConcurrentBlobs downloads open', async () => {
    const f = await serve((req, res) => sendBlob(req, res));
    const c = client(f.host, { maxConcurrentBlobs: 1 });
    const first = await c.openBlob('a', desc);
    let secondOpened = false;
    const second = c.openBlob('a', desc).then((s) => {
      secondOpened = true;
      return s;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(secondOpened).toBe(false);
    await buffer(first);
    expect((await buffer(await second)).equals(blob)).toBe(true);
  });

  it('releases the slot and the connection when a stream is destroyed unread', async () => {
    const f = await serve((req, res) => sendBlob(req, res));
    const c = client(f.host, { maxConcurrentBlobs: 1 });
    const first = await c.openBlob('a', desc);
    first.destroy();
    const second = await c.openBlob('a', desc);
    expect((await buffer(second)).equals(blob)).toBe(true);
  });

  it('reports an abort as INTERRUPTED', async () => {
    const f = await serve((req, res) => sendBlob(req, res, { cutAfter: 1000 }));
    const ac = new AbortController();
    const stream = await client(f.host).openBlob('a', desc, { signal: ac.signal });
    ac.abort();
    const err = await buffer(stream).catch((e: unknown) => e);
    expect((err as AirlockError).code).toBe('INTERRUPTED');
  });

  it('hasBlob: HEAD 200 is true, 404 is false', async () => {
    const f = await serve((req, res) => res.writeHead(req.url?.includes(desc.digest) ? 200 : 404, { 'content-length': 0 }).end());
    const c = client(f.host);
    expect(await c.hasBlob('a', desc)).toBe(true);
    expect(await c.hasBlob('a', { ...desc, digest: sha256Digest('nope') })).toBe(false);
    expect(f.seen.filter((s) => s.method === 'HEAD')).toHaveLength(2);
  });
});

/** A minimal upload endpoint recording PATCH sizes; Locations alternate between relative and absolute. */
async function uploadServer(opts: { digestInvalid?: boolean } = {}) {
  const received: Buffer[] = [];
  let state = 0;
  const f: Fixture = await serve((req, res, body) => {
    const url = new URL(req.url ?? '', 'http://x');
    const next = (): string => {
      state++;
      return state % 2 === 0 ? `/v2/a/blobs/uploads/u1?_state=${state}` : `${f.url}/v2/a/blobs/uploads/u1?_state=${state}`;
    };
    if (req.method === 'POST') {
      if (url.searchParams.get('mount') !== null) {
        if (url.searchParams.get('from') === 'has') return res.writeHead(201, { location: `/v2/a/blobs/${desc.digest}`, 'content-length': 0 }).end();
      }
      return res.writeHead(202, { location: next(), 'content-length': 0 }).end();
    }
    const current = Number(url.searchParams.get('_state'));
    if (req.method !== 'DELETE' && current !== state) {
      return res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'stale' }] }));
    }
    if (req.method === 'PATCH') {
      received.push(body);
      return res.writeHead(202, { location: next(), 'content-length': 0 }).end();
    }
    if (req.method === 'PUT') {
      received.push(body);
      const all = Buffer.concat(received);
      if (opts.digestInvalid === true || sha256Digest(all) !== url.searchParams.get('digest')) {
        return res
          .writeHead(400, { 'content-type': 'application/json' })
          .end(JSON.stringify({ errors: [{ code: 'DIGEST_INVALID', message: 'provided digest did not match uploaded content' }] }));
      }
      return res.writeHead(201, { 'docker-content-digest': sha256Digest(all), 'content-length': 0 }).end();
    }
    if (req.method === 'DELETE') return res.writeHead(204).end();
    res.writeHead(405).end();
  });
  return { f, received };
}

describe('putBlob', () => {
  it('sends a small blob as POST then PUT ?digest= with the body', async () => {
    const { f, received } = await uploadServer();
    const small = blob.subarray(0, 1000);
    const d = { ...desc, digest: sha256Digest(small), size: small.length };
    await client(f.host).putBlob('a', d, Readable.from([small]));
    expect(f.seen.filter((s) => s.url !== '/v2/').map((s) => s.method)).toEqual(['POST', 'PUT']);
    expect(Buffer.concat(received).equals(small)).toBe(true);
  });

  it('sends a large blob in PATCH chunks following the newest Location, then an empty PUT', async () => {
    const { f, received } = await uploadServer();
    const c = client(f.host, { upload: { monolithicLimit: 1024 * 1024, chunkSize: 1024 * 1024 } });
    // Odd-sized source chunks, so chunk boundaries fall inside them.
    const pieces = [];
    for (let i = 0; i < blob.length; i += 300_001) pieces.push(blob.subarray(i, i + 300_001));
    await c.putBlob('a', desc, Readable.from(pieces));
    const steps = f.seen.filter((s) => s.url !== '/v2/');
    expect(steps.map((s) => s.method)).toEqual(['POST', 'PATCH', 'PATCH', 'PATCH', 'PATCH', 'PUT']);
    expect(steps.filter((s) => s.method === 'PATCH').map((s) => s.bodyLength)).toEqual([1048576, 1048576, 1048576, 17]);
    expect(steps.filter((s) => s.method === 'PATCH').every((s) => s.headers['content-type'] === 'application/octet-stream')).toBe(true);
    expect(steps[2]?.headers['content-range']).toBe('1048576-2097151');
    expect(Buffer.concat(received).equals(blob)).toBe(true);
  });

  it('by default sends a large blob in one PATCH, as docker push does, then an empty PUT', async () => {
    const { f, received } = await uploadServer();
    const c = client(f.host, { upload: { monolithicLimit: 1024 * 1024 } });
    await c.putBlob('a', desc, Readable.from([blob.subarray(0, 1_000_000), blob.subarray(1_000_000)]));
    const steps = f.seen.filter((s) => s.url !== '/v2/');
    expect(steps.map((s) => s.method)).toEqual(['POST', 'PATCH', 'PUT']);
    expect(steps[1]?.bodyLength).toBe(blob.length);
    expect(steps[1]?.headers['content-range']).toBe(`0-${blob.length - 1}`);
    expect(Buffer.concat(received).equals(blob)).toBe(true);
  });

  it('maps DIGEST_INVALID to INTEGRITY and deletes the session', async () => {
    const { f } = await uploadServer({ digestInvalid: true });
    const small = blob.subarray(0, 10);
    const err = await failure(client(f.host).putBlob('a', { ...desc, digest: sha256Digest(small), size: 10 }, Readable.from([small])));
    expect(err.code).toBe('INTEGRITY');
    expect(f.seen.at(-1)?.method).toBe('DELETE');
  });

  it('fails with INTEGRITY, without committing, when the body is shorter or longer than the descriptor', async () => {
    const { f } = await uploadServer();
    const c = client(f.host, { upload: { monolithicLimit: 1024 * 1024, chunkSize: 1024 * 1024 } });
    const short = await failure(c.putBlob('a', desc, Readable.from([blob.subarray(0, 2_000_000)])));
    expect(short.code).toBe('INTEGRITY');
    const long = await failure(c.putBlob('a', { ...desc, size: 100, digest: sha256Digest(blob.subarray(0, 100)) }, Readable.from([blob.subarray(0, 101)])));
    expect(long.code).toBe('INTEGRITY');
    expect(f.seen.filter((s) => s.method === 'PUT' && s.bodyLength > 0)).toHaveLength(0);
  });

  it("reports the body's own error, not the request's", async () => {
    const { f } = await uploadServer();
    const boom = new AirlockError('IO', 'disk on fire');
    const body = new Readable({
      read() {
        this.destroy(boom);
      },
    });
    expect(await failure(client(f.host).putBlob('a', desc, body))).toBe(boom);
  });

  it('mountBlob: 201 is true; 202 is false and the session is deleted', async () => {
    const { f } = await uploadServer();
    const c = client(f.host);
    expect(await c.mountBlob('a', desc, 'has')).toBe(true);
    expect(await c.mountBlob('a', desc, 'hasnt')).toBe(false);
    const steps = f.seen.filter((s) => s.url !== '/v2/');
    expect(steps.map((s) => s.method)).toEqual(['POST', 'POST', 'DELETE']);
    expect(steps[0]?.url).toBe(`/v2/a/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=has`);
  });
});

describe('Semaphore', () => {
  it('serves waiters in order, hands permits over, and lets an aborted waiter leave', async () => {
    const sem = new Semaphore(1);
    const order: string[] = [];
    const release1 = await sem.acquire();
    const ac = new AbortController();
    const aborted = sem.acquire(ac.signal).catch((e: unknown) => (e as AirlockError).code);
    const second = sem.acquire().then((release) => {
      order.push('second');
      return release;
    });
    ac.abort();
    expect(await aborted).toBe('INTERRUPTED');
    expect(order).toEqual([]);
    release1();
    release1(); // a second release is harmless
    const release2 = await second;
    expect(order).toEqual(['second']);
    let thirdIn = false;
    const third = sem.acquire().then(() => (thirdIn = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(thirdIn).toBe(false);
    release2();
    await third;
    expect(thirdIn).toBe(true);
  });
});
