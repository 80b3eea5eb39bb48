/**
 * `bundle create` and `inventory` through the seeded fault proxy (test/support/fault-proxy.ts) in
 * front of a real registry: under each of 20 seeds both complete with exactly the fault-free
 * result (the same archive bytes, the same inventory bytes), within a fixed bound of the fault-free
 * time. One create also runs through the CLI, to see the retry lines, the count in --json, and a
 * --debug trace without secrets.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { createBundle } from '../../src/ops/create.js';
import { makeInventory } from '../../src/ops/inventory.js';
import type { ImageToResolve } from '../../src/copy/resolve.js';
import type { RegistryClient } from '../../src/registry/client.js';
import { airlock } from '../support/cli.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { EXTRA_MS, FAULT_RATE, fastClient, printFigures, SEEDS, type RunFigure } from '../support/faults.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry, type SeededImage } from '../support/seed.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const IMAGES = ['docker.io/library/busybox:musl', 'quay.io/coreos/etcd:v3.3.0', 'quay.io/coreos/etcd:v3.5.0', 'docker.io/library/alpine:3.18'];
const NOW = new Date('2026-01-02T03:04:05Z');
let tmp: TempDir;
let reg: TestRegistry;
let proxy: FaultProxy;
let seeded: SeededImage[];
const figures: RunFigure[] = [];
const baselines = new Map<string, number>();
/** Requests of the fault-free run, per command. */
const cleanRequests = new Map<string, number>();

beforeAll(async () => {
  tmp = await makeTempDir('faults-create');
  const corpus = await writeCorpus(`${tmp.path}/upstream`);
  reg = await startRegistry();
  seeded = [...(await seedRegistry(reg, corpus.dir, IMAGES)).values()];
  proxy = await startFaultProxy({ target: reg.host, rate: FAULT_RATE });
});

afterAll(async () => {
  if (figures.length > 0) console.log(printFigures(figures, baselines));
  await proxy?.close();
  await reg?.stop();
  await tmp?.remove();
});

function images(client: RegistryClient): ImageToResolve[] {
  return seeded.map((s) => ({
    name: `${proxy.host}/${s.repository}:${s.tag}`,
    sourceRef: `${proxy.host}/${s.repository}:${s.tag}`,
    source: client,
    repository: s.repository,
    reference: s.tag,
  }));
}

/** Run `fn` with a fresh client through the proxy under `seed` (undefined: no faults). */
async function timed<T>(command: string, seed: number | undefined, fn: (client: RegistryClient) => Promise<T>): Promise<{ value: T; ms: number }> {
  proxy.setSeed(seed);
  let retries = 0;
  const client = fastClient(proxy.host, (e) => (e.kind === 'retry' ? retries++ : undefined));
  const started = performance.now();
  try {
    const value = await fn(client);
    const ms = performance.now() - started;
    if (seed === undefined) cleanRequests.set(command, proxy.stats.requests);
    // Bounded loops: each fault costs a few requests at most (a retry, a resume, a check).
    else expect(proxy.stats.requests).toBeLessThanOrEqual((cleanRequests.get(command) ?? 0) + 5 * proxy.stats.faults);
    if (seed !== undefined)
      figures.push({ command, seed, requests: proxy.stats.requests, faults: proxy.stats.faults, retries, byKind: { ...proxy.stats.byKind }, ms });
    return { value, ms };
  } finally {
    await client.close();
  }
}

describe('bundle create under injected faults', () => {
  let archive: Buffer;
  it('fault-free: the reference archive', async () => {
    const out = `${tmp.path}/clean.tar.zst`;
    // Twice: the first run warms up the registry and this process; the second is the baseline.
    await timed('create', undefined, (c) => createBundle({ images: images(c), output: out, unsigned: true, now: () => new Date(NOW), force: true }));
    const { ms } = await timed('create', undefined, (c) =>
      createBundle({ images: images(c), output: out, unsigned: true, now: () => new Date(NOW), force: true }),
    );
    baselines.set('create', ms);
    archive = await readFile(out);
  });

  it.each(SEEDS)('seed %i: the same archive, byte for byte', async (seed) => {
    const out = `${tmp.path}/seed-${seed}.tar.zst`;
    const { value, ms } = await timed('create', seed, (c) => createBundle({ images: images(c), output: out, unsigned: true, now: () => new Date(NOW) }));
    expect(value.images.map((i) => i.digest)).toEqual(seeded.map((s) => s.digest));
    expect((await readFile(out)).equals(archive)).toBe(true);
    expect(ms).toBeLessThan(baselines.get('create')! + EXTRA_MS);
  });
});

describe('inventory under injected faults', () => {
  let file: Buffer;
  const target = (c: RegistryClient) => ({ kind: 'registry' as const, host: proxy.host, prefix: '', registry: c });
  it('fault-free: the reference inventory', async () => {
    await timed('inventory', undefined, (c) => makeInventory({ target: target(c), now: () => new Date(NOW) }));
    const { value, ms } = await timed('inventory', undefined, (c) => makeInventory({ target: target(c), now: () => new Date(NOW) }));
    baselines.set('inventory', ms);
    file = value.file;
    expect(value.images).toBe(IMAGES.length);
  });

  it.each(SEEDS)('seed %i: the same inventory, byte for byte', async (seed) => {
    const { value, ms } = await timed('inventory', seed, (c) => makeInventory({ target: target(c), now: () => new Date(NOW) }));
    expect(value.file.equals(file)).toBe(true);
    expect(ms).toBeLessThan(baselines.get('inventory')! + EXTRA_MS);
  });
});

describe('over all seeds', () => {
  it('met faults of every kind, and retried for most of them (some cut a body after its end)', () => {
    const kinds = new Set(figures.flatMap((f) => Object.keys(f.byKind)));
    expect([...kinds].sort()).toEqual(['cut-body', 'reset-after-head', 'reset-before-head', 'stall-body', 'stall-head', 'status', 'trickle']);
    expect(figures.reduce((n, r) => n + r.retries, 0)).toBeGreaterThan(figures.reduce((n, r) => n + r.faults, 0) / 2);
  });
});

describe('the CLI under injected faults', () => {
  const refs = () => seeded.map((s) => `${proxy.host}/${s.repository}:${s.tag}`);
  it('prints one line per retry, counts them in --json, and completes', async () => {
    proxy.setSeed(3);
    const r = await airlock(['bundle', 'create', ...refs(), '-o', `${tmp.path}/cli.tar.zst`, '--unsigned', '--plain-http', '--timeout', '1s', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('retrying '));
    const result = JSON.parse(r.stdout) as { retries: number; images: Array<{ digest: string }> };
    expect(result.images.map((i) => i.digest)).toEqual(seeded.map((s) => s.digest));
    expect(proxy.stats.faults).toBeGreaterThan(0);
    expect(lines.length).toBe(result.retries);
    expect(result.retries).toBeGreaterThan(0);
    expect(lines[0]).toMatch(/^retrying (GET|HEAD|PUT|POST) 127\.0\.0\.1:\d+\/\S+ \(\d\/\d\): .+$/);
  });

  it('prints no retry line with --quiet, and an HTTP trace with --debug', async () => {
    proxy.setSeed(3);
    const quiet = await airlock(['bundle', 'create', ...refs(), '-o', `${tmp.path}/cli-q.tar.zst`, '--unsigned', '--plain-http', '--timeout', '1s', '-q']);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe('');
    proxy.setSeed(undefined);
    const debug = await airlock(['bundle', 'create', ...refs(), '-o', `${tmp.path}/cli-d.tar.zst`, '--unsigned', '--plain-http', '--debug', '-q']);
    expect(debug.code).toBe(0);
    const trace = debug.stderr.split('\n').filter((l) => l.startsWith('http '));
    expect(trace.length).toBe(proxy.stats.requests);
    expect(trace).toContainEqual(expect.stringMatching(/^http GET 127\.0\.0\.1:\d+\/v2\/library\/busybox\/manifests\/musl 200 \S+ \S+ \d+ ms$/));
  });
});
