/**
 * Bounded waits of RegistryClient against throwaway node:http servers on 127.0.0.1: a silent
 * server, a stalled body, a trickling body, a blob opened ahead that breaks unread; the rate floor;
 * how timeouts are classified and named; retry and trace events.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { buffer } from 'node:stream/consumers';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/digest/digest.js';
import { AirlockError } from '../../src/errors.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { RegistryClient, type RegistryOptions } from '../../src/registry/client.js';
import { networkError } from '../../src/registry/errors.js';
import { failureReason, redactUrl, type RegistryEvent } from '../../src/registry/events.js';
import { isTemporary, withRetry, DEFAULT_RETRY } from '../../src/registry/retry.js';
import { BodyPace, commitHeadersTimeout, DEFAULT_TIMEOUTS, minBytesPerWindow, SlowBodyError, timeoutsFrom } from '../../src/registry/timeouts.js';
import { listenLocal } from '../support/listen.js';

const coded = (code: string): Error => Object.assign(new Error(code), { code });

describe('BodyPace (the rate floor)', () => {
  function clock(): { now: () => number; advance: (ms: number) => void } {
    let t = 0;
    return { now: () => t, advance: (ms) => (t += ms) };
  }

  it('fails a body that trickles below 1 KiB/s for a whole window', () => {
    const c = clock();
    const pace = new BodyPace(10_000, c.now);
    const feed = (): void => {
      for (let i = 0; i < 20; i++) {
        pace.waiting();
        c.advance(1000);
        pace.got(1); // a byte a second
      }
    };
    expect(feed).toThrow(SlowBodyError);
  });

  it('accepts a slow but real link and counts only time spent waiting', () => {
    const c = clock();
    const pace = new BodyPace(10_000, c.now);
    for (let i = 0; i < 100; i++) {
      pace.waiting();
      c.advance(1000);
      pace.got(2048); // 2 KiB/s
      c.advance(60_000); // the reader is busy (or left the body unread): not the server's fault
    }
  });

  it('scales the floor with the window', () => {
    expect(minBytesPerWindow(60_000)).toBe(60 * 1024);
    expect(minBytesPerWindow(1000)).toBe(1024);
  });
});

describe('timeouts', () => {
  it('defaults to 30 s connect, 60 s response head, 60 s without a body byte', () => {
    expect(DEFAULT_TIMEOUTS).toEqual({ connectMs: 30_000, headersMs: 60_000, bodyMs: 60_000 });
  });
  it('derives all three from --timeout, connecting getting half', () => {
    expect(timeoutsFrom(90_000)).toEqual({ connectMs: 45_000, headersMs: 90_000, bodyMs: 90_000 });
  });
  it('gives the final PUT of a large blob time to commit', () => {
    expect(commitHeadersTimeout(1000, DEFAULT_TIMEOUTS)).toBe(60_001);
    expect(commitHeadersTimeout(4 * 1024 ** 3, DEFAULT_TIMEOUTS)).toBe(60_000 + 256_000);
  });
});

describe('classification', () => {
  it.each([
    ['UND_ERR_HEADERS_TIMEOUT', true],
    ['UND_ERR_BODY_TIMEOUT', true],
    ['ESLOWBODY', true],
    ['UND_ERR_CONNECT_TIMEOUT', false],
  ])('%s is temporary on first contact: %s', (code, temporary) => {
    expect(isTemporary(coded(code), { idempotent: true })).toBe(temporary);
  });
  it('retries a connect timeout once the registry has answered before', () => {
    expect(isTemporary(coded('UND_ERR_CONNECT_TIMEOUT'), { contacted: true })).toBe(true);
  });
  it('treats a body below the floor as temporary', () => {
    expect(isTemporary(new SlowBodyError(10, 60_000))).toBe(true);
  });

  const subject = { host: 'quay.io', repository: 'coreos/etcd', what: 'blob sha256:ab12 of coreos/etcd' };
  const ctx = { subject, plainHttp: false, timeouts: DEFAULT_TIMEOUTS, attempts: 6 };
  it.each([
    ['UND_ERR_BODY_TIMEOUT', 'no data from quay.io for 60 s while reading blob sha256:ab12 of coreos/etcd (6 attempts)'],
    ['UND_ERR_HEADERS_TIMEOUT', 'no response from quay.io for 60 s to blob sha256:ab12 of coreos/etcd (6 attempts)'],
    ['UND_ERR_CONNECT_TIMEOUT', 'cannot connect to registry quay.io: no connection within 30 s (6 attempts)'],
    ['ESLOWBODY', 'quay.io sent blob sha256:ab12 of coreos/etcd slower than 1 KiB/s for 60 s (6 attempts)'],
    ['ECONNRESET', 'connection to registry quay.io was lost during blob sha256:ab12 of coreos/etcd (ECONNRESET) (6 attempts)'],
  ])('%s names the host, what timed out and the attempts', (code, message) => {
    const err = networkError(coded(code), ctx) as AirlockError;
    expect([err.code, err.message]).toEqual(['NETWORK', message]);
    expect(err.details?.attempts).toBe(6);
  });

  it.each([
    [coded('ECONNRESET'), 'connection reset'],
    [coded('UND_ERR_BODY_TIMEOUT'), 'no data for 60 s'],
    [coded('UND_ERR_HEADERS_TIMEOUT'), 'no response for 60 s'],
    [new SlowBodyError(1, 60_000), 'body slower than 1 KiB/s'],
  ])('gives a short reason for a retry line: %s', (err, reason) => {
    expect(failureReason(err, DEFAULT_TIMEOUTS)).toBe(reason);
  });

  it('redacts query values and user info in URLs, keeping the harmless ones', () => {
    expect(redactUrl('https://u:p@r.example/v2/a/blobs/uploads/x?_state=SECRET&digest=sha256:ab')).toBe(
      'r.example/v2/a/blobs/uploads/x?_state=REDACTED&digest=sha256:ab',
    );
    expect(redactUrl('https://bucket.s3.example/blob?X-Amz-Signature=abc&X-Amz-Credential=def')).toBe(
      'bucket.s3.example/blob?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED',
    );
  });

  it('tells of each retry with the attempt to come', async () => {
    const heard: number[] = [];
    let n = 0;
    await withRetry(
      async () => {
        if (n++ < 2) throw coded('ECONNRESET');
      },
      { ...DEFAULT_RETRY, sleep: async () => {} },
      () => ({}),
      undefined,
      (_err, attempt) => heard.push(attempt),
    );
    expect(heard).toEqual([2, 3]);
  });
});

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const servers: Array<() => Promise<void>> = [];
const clients: RegistryClient[] = [];

async function serve(handler: Handler): Promise<string> {
  const server = createServer((req, res) => {
    if (req.url === '/v2/') {
      res.writeHead(200, { 'content-length': 2 }).end('{}');
      return;
    }
    handler(req, res);
  });
  const { host, close } = await listenLocal(server);
  servers.push(close);
  return host;
}

function client(host: string, options: Partial<RegistryOptions> = {}): RegistryClient {
  const c = new RegistryClient(host, {
    plainHttp: true,
    userAgent: 'airlock-test',
    certsDirs: [],
    authFiles: [],
    retry: { sleep: async () => {}, baseDelayMs: 1, retries: 2 },
    timeouts: { connectMs: 500, headersMs: 300, bodyMs: 300 },
    ...options,
  });
  clients.push(c);
  return c;
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((close) => close()));
});

const blob = randomBytes(256 * 1024 + 3);
const desc: Descriptor = { mediaType: 'application/octet-stream', digest: sha256Digest(blob), size: blob.length };

/** Serve `blob` from the Range start; `shape` decides how this attempt's body goes out. */
function sendBlob(req: IncomingMessage, res: ServerResponse, shape: 'whole' | 'stall' | 'trickle' | 'cut' = 'whole'): void {
  const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
  const part = blob.subarray(start);
  res.writeHead(start > 0 ? 206 : 200, {
    'content-length': part.length,
    ...(start > 0 ? { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` } : {}),
  });
  if (shape === 'whole') {
    res.end(part);
  } else if (shape === 'cut') {
    res.write(part.subarray(0, 20_000), () => req.socket.destroy());
  } else if (shape === 'stall') {
    res.write(part.subarray(0, 50_000)); // then silence
  } else {
    let i = 0;
    const t = setInterval(() => {
      if (res.destroyed || i >= part.length) return clearInterval(t);
      res.write(part.subarray(i, i + 1));
      i++;
    }, 20);
    res.on('close', () => clearInterval(t));
  }
}

describe('bounded waits against a real socket', () => {
  it('gives up on a server that never answers, naming the host, the wait and the attempts', async () => {
    const host = await serve(() => {}); // accepts, then says nothing
    const started = Date.now();
    const err = (await client(host)
      .getManifest('a', 'v1')
      .catch((e: unknown) => e)) as AirlockError;
    expect(err).toBeInstanceOf(AirlockError);
    expect(err.message).toBe(`no response from ${host} for 300 ms to manifest a:v1 (3 attempts)`);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('resumes a stalled blob with Range and reports the retry', async () => {
    const ranges: Array<string | undefined> = [];
    const host = await serve((req, res) => {
      ranges.push(req.headers.range);
      sendBlob(req, res, ranges.length === 1 ? 'stall' : 'whole');
    });
    const events: RegistryEvent[] = [];
    const got = await buffer(await client(host, { onEvent: (e) => events.push(e) }).openBlob('a', desc));
    expect(got.equals(blob)).toBe(true);
    expect(ranges[0]).toBeUndefined();
    expect(ranges[1]).toMatch(/^bytes=\d+-$/);
    const retries = events.filter((e) => e.kind === 'retry');
    expect(retries).toEqual([
      expect.objectContaining({
        kind: 'retry',
        method: 'GET',
        url: `${host}/v2/a/blobs/${desc.digest}`,
        attempt: 2,
        attempts: 3,
        reason: 'no data for 300 ms',
      }),
    ]);
    expect(events.filter((e) => e.kind === 'http').map((e) => (e as { status?: number }).status)).toEqual([200, 200, 206]);
  });

  it('does not wait for ever on a body that trickles a byte at a time', async () => {
    let attempts = 0;
    const host = await serve((req, res) => {
      attempts++;
      sendBlob(req, res, 'trickle');
    });
    const started = Date.now();
    const stream = await client(host).openBlob('a', desc);
    const err = (await buffer(stream).catch((e: unknown) => e)) as AirlockError;
    expect(err).toBeInstanceOf(AirlockError);
    expect(err.message).toBe(`${host} sent blob ${desc.digest} of a slower than 1 KiB/s for 300 ms (3 attempts)`);
    expect(attempts).toBe(3);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('bounds a trickled manifest too', async () => {
    const host = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': 4000 });
      const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write('x')), 20);
      res.on('close', () => clearInterval(t));
    });
    const err = (await client(host)
      .getManifest('a', 'v1')
      .catch((e: unknown) => e)) as AirlockError;
    expect(err.message).toBe(`${host} sent manifest a:v1 slower than 1 KiB/s for 300 ms (3 attempts)`);
  });

  it('resumes a blob opened ahead whose connection broke while nobody read it', async () => {
    let n = 0;
    const host = await serve((req, res) => sendBlob(req, res, n++ === 0 ? 'cut' : 'whole'));
    const c = client(host);
    const ahead = await c.openBlob('a', desc);
    // Nobody reads it while the server cuts it; its error and close events pass unheard.
    await new Promise((r) => setTimeout(r, 200));
    const got = await Promise.race([buffer(ahead), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('hung')), 5_000))]);
    expect(got.equals(blob)).toBe(true);
    expect(n).toBe(2);
  });

  it('resumes a blob opened ahead whose idle timer fired before it was paused', async () => {
    let n = 0;
    const host = await serve((req, res) => sendBlob(req, res, n++ === 0 ? 'stall' : 'whole'));
    const ahead = await client(host).openBlob('a', desc);
    await new Promise((r) => setTimeout(r, 700)); // past the 300 ms body timeout, unread
    const got = await buffer(ahead);
    expect(got.equals(blob)).toBe(true);
    expect(n).toBe(2);
  });
});
