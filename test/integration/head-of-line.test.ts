/**
 * The head-of-line deadlock: `bundle create` reads blobs one after another and opens the next three
 * ahead. Here the blob at the head of the line stalls while the three behind it sit opened and
 * unread; one of those is cut by the server meanwhile, one falls silent before the client paused
 * it (so the idle timeout kills it while nobody reads it), one waits paused in its socket. The
 * create must finish with every digest exact, and everything it opened must be closed on abort.
 */
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { createBundle } from '../../src/ops/create.js';
import { verifyBundle } from '../../src/ops/verify.js';
import { RegistryClient } from '../../src/registry/client.js';
import type { ImageToResolve } from '../../src/copy/resolve.js';
import { startFaultProxy, type Fault, type FaultProxy, type RequestInfo } from '../support/fault-proxy.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry, type SeededImage } from '../support/seed.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const KiB = 1024;
const NAME = 'example.com/big/five:v1';
let tmp: TempDir;
let reg: TestRegistry;
let seeded: SeededImage;
/** Layer digests in manifest order: the order create reads them in. */
let layers: string[];

beforeAll(async () => {
  tmp = await makeTempDir('hol');
  // Five layers of ~1.5 MiB (random content: gzip does not shrink it), so opened-ahead responses
  // fill their sockets and undici pauses them.
  const corpus = await writeCorpus(`${tmp.path}/upstream`, {
    images: [{ name: NAME, layers: [1, 2, 3, 4, 5].map((n) => ({ id: `big-${n}`, size: 1536 * KiB, files: 1 })) }],
  });
  reg = await startRegistry();
  seeded = (await seedRegistry(reg, corpus.dir)).get(NAME)!;
  const image = corpus.images[0]!;
  layers = image.blobs.filter((b) => b.mediaType.includes('layer')).map((b) => b.digest);
  expect(layers).toHaveLength(5);
});

afterAll(async () => {
  await reg?.stop();
  await tmp?.remove();
});

function clientFor(host: string): RegistryClient {
  return new RegistryClient(host, {
    plainHttp: true,
    userAgent: 'airlock-test',
    certsDirs: [],
    authFiles: [],
    timeouts: { connectMs: 2_000, headersMs: 2_000, bodyMs: 1_000 },
    retry: { baseDelayMs: 20, maxDelayMs: 100 },
  });
}

function imageFrom(client: RegistryClient, host: string): ImageToResolve[] {
  return [{ name: `${host}/big/five:v1`, sourceRef: `${host}/big/five:v1`, source: client, repository: 'big/five', reference: 'v1' }];
}

/** Fault only the first GET of each listed layer. */
function firstGets(faults: Map<string, Fault>): (req: RequestInfo) => Fault | null {
  return (req) => {
    if (req.method !== 'GET' || req.occurrence > 0) return null;
    const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url)?.[1];
    return (digest === undefined ? undefined : faults.get(digest)) ?? null;
  };
}

/** Resolves with the promise's value, or rejects naming what hung. */
async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} hung for ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, hung]);
  } finally {
    clearTimeout(timer);
  }
}

describe('the blob at the head of the line', () => {
  let proxy: FaultProxy;
  afterAll(async () => proxy?.close());

  it('stalls while three blobs are opened ahead and broken behind it, and create still completes exactly', async () => {
    proxy = await startFaultProxy({
      target: reg.host,
      decide: firstGets(
        new Map<string, Fault>([
          // the head: silent after 256 KiB, for longer than the idle timeout
          [layers[0]!, { kind: 'stall-body', after: 256 * KiB }],
          // opened ahead: cut by the server while nobody reads it
          [layers[1]!, { kind: 'cut-body', after: 300 * KiB }],
          // opened ahead: silent after 16 KiB, before undici paused it, so its idle timer fires unread
          [layers[2]!, { kind: 'stall-body', after: 16 * KiB }],
          // layers[3]: opened ahead and paused in its socket; it must survive the wait
        ]),
      ),
    });
    const client = clientFor(proxy.host);
    try {
      const out = `${tmp.path}/hol.tar.zst`;
      const result = await within(60_000, 'bundle create', createBundle({ images: imageFrom(client, proxy.host), output: out, unsigned: true }));
      expect(result.images.map((i) => i.digest)).toEqual([seeded.digest]);
      const verified = await verifyBundle({ path: out, trusted: [], allowUnsigned: true });
      expect(verified.blobs).toBe(result.totals.blobs);
      // The three broken blobs were each fetched again (the head with a Range), the paused one once.
      const gets = (d: string) => proxy.stats.log.filter((r) => r.method === 'GET' && r.url.endsWith(d)).length;
      expect([gets(layers[0]!), gets(layers[1]!), gets(layers[2]!), gets(layers[3]!), gets(layers[4]!)]).toEqual([2, 2, 2, 1, 1]);
    } finally {
      await client.close();
    }
    expect(proxy.active()).toBe(0);
  });

  it('closes every response it opened when the run is aborted while blobs are opened ahead', async () => {
    await proxy?.close();
    // The head stalls for good (every attempt): the run can only end by the abort.
    proxy = await startFaultProxy({
      target: reg.host,
      decide: (req) => (req.method === 'GET' && req.url.endsWith(layers[0]!) ? { kind: 'stall-body', after: 64 * KiB } : null),
    });
    // Our own Agent, to see what the client has in flight (the client still sets its timeouts per request).
    const agent = new Agent();
    const client = new RegistryClient(proxy.host, { plainHttp: true, userAgent: 'airlock-test', certsDirs: [], authFiles: [], dispatcher: agent });
    const running = (): number => agent.stats[`http://${proxy.host}`]?.running ?? 0;
    const controller = new AbortController();
    try {
      const run = createBundle({ images: imageFrom(client, proxy.host), output: `${tmp.path}/aborted.tar.zst`, unsigned: true, signal: controller.signal });
      run.catch(() => undefined);
      // Wait until the head is stalled and the three blobs behind it are open (the fifth waits for a slot).
      for (let i = 0; i < 400 && running() < 4; i++) await new Promise((r) => setTimeout(r, 25));
      expect(running()).toBe(4);
      controller.abort();
      const err = await within(
        5_000,
        'the aborted create',
        run.then(
          () => undefined,
          (e: unknown) => e,
        ),
      );
      expect((err as { code?: string }).code).toBe('INTERRUPTED');
      for (let i = 0; i < 80 && running() > 0; i++) await new Promise((r) => setTimeout(r, 25));
      expect(running()).toBe(0);
    } finally {
      await client.close();
      await agent.destroy();
    }
  });
});
