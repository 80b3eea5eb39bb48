/**
 * `bundle import` through the seeded fault proxy (test/support/fault-proxy.ts) in front of a real
 * target registry: under each of 20 seeds every image lands with exactly its upstream digest, each
 * seed into its own prefix (so nothing is already there), within a fixed bound of the fault-free
 * time. The `oci:` target has no network to fault; it is run for the same seeds as a control.
 * One import also runs through the CLI, with --debug: upload session state never shows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { createBundle } from '../../src/ops/create.js';
import { importBundle } from '../../src/ops/import.js';
import { parseImportTarget } from '../../src/names/import-names.js';
import { Layout } from '../../src/layout/layout.js';
import { readIndex } from '../../src/layout/index-file.js';
import type { RegistryClient } from '../../src/registry/client.js';
import { airlock } from '../support/cli.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { EXTRA_MS, FAULT_RATE, fastClient, printFigures, SEEDS, type RunFigure } from '../support/faults.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry, type SeededImage } from '../support/seed.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const IMAGES = ['docker.io/library/busybox:musl', 'quay.io/coreos/etcd:v3.3.0', 'quay.io/coreos/etcd:v3.5.0', 'docker.io/library/alpine:3.18'];
let tmp: TempDir;
let source: TestRegistry;
let target: TestRegistry;
let proxy: FaultProxy;
let seeded: SeededImage[];
let bundle: string;
let direct: RegistryClient;
const figures: RunFigure[] = [];
const baselines = new Map<string, number>();
let cleanRequests = 0;

beforeAll(async () => {
  tmp = await makeTempDir('faults-import');
  const corpus = await writeCorpus(`${tmp.path}/upstream`);
  [source, target] = await Promise.all([startRegistry(), startRegistry()]);
  seeded = [...(await seedRegistry(source, corpus.dir, IMAGES)).values()];
  bundle = `${tmp.path}/in.tar.zst`;
  const reader = fastClient(source.host);
  try {
    const images = seeded.map((s) => ({
      name: `registry.example/${s.repository}:${s.tag}`,
      sourceRef: s.ref,
      source: reader,
      repository: s.repository,
      reference: s.tag,
    }));
    await createBundle({ images, output: bundle, unsigned: true });
  } finally {
    await reader.close();
  }
  proxy = await startFaultProxy({ target: target.host, rate: FAULT_RATE });
  direct = fastClient(target.host);
});

afterAll(async () => {
  if (figures.length > 0) console.log(printFigures(figures, baselines));
  await direct?.close();
  await proxy?.close();
  await Promise.all([source?.stop(), target?.stop()]);
  await tmp?.remove();
});

/** Import into `PROXY/prefix`; every image must be in the target under its tag with its upstream digest. */
async function importVia(prefix: string, seed: number | undefined): Promise<number> {
  proxy.setSeed(seed);
  let retries = 0;
  const client = fastClient(proxy.host, (e) => (e.kind === 'retry' ? retries++ : undefined));
  const started = performance.now();
  try {
    await importBundle({
      path: bundle,
      target: parseImportTarget(`${proxy.host}/${prefix}`),
      sink: client,
      trusted: [],
      allowUnsigned: true,
      retry: { baseDelayMs: 20, maxDelayMs: 250 },
      onProgress: (e) => (e.kind === 'retry' ? retries++ : undefined),
    });
  } finally {
    await client.close();
  }
  const ms = performance.now() - started;
  if (seed === undefined) cleanRequests = proxy.stats.requests;
  // Bounded loops: each fault costs a few requests at most (a retry, a check, a new session).
  else expect(proxy.stats.requests).toBeLessThanOrEqual(cleanRequests + 5 * proxy.stats.faults);
  if (seed !== undefined)
    figures.push({ command: 'import', seed, requests: proxy.stats.requests, faults: proxy.stats.faults, retries, byKind: { ...proxy.stats.byKind }, ms });
  for (const s of seeded) {
    const repository = `${prefix}/registry.example/${s.repository}`;
    expect((await direct.getManifest(repository, s.tag)).digest).toBe(s.digest);
  }
  return ms;
}

describe('bundle import into a registry under injected faults', () => {
  it('fault-free: the reference time', async () => {
    await importVia('warm', undefined);
    baselines.set('import', await importVia('clean', undefined));
  });

  it.each(SEEDS)('seed %i: every image with its upstream digest', async (seed) => {
    const ms = await importVia(`s${seed}`, seed);
    expect(ms).toBeLessThan(baselines.get('import')! + EXTRA_MS);
  });
});

describe('bundle import into oci: (no network: the control)', () => {
  it.each(SEEDS)('seed %i: every image with its upstream digest', async (seed) => {
    const dir = `${tmp.path}/oci-${seed}`;
    const started = performance.now();
    await importBundle({ path: bundle, target: parseImportTarget(`oci:${dir}`), sink: new Layout(dir), trusted: [], allowUnsigned: true });
    const ms = performance.now() - started;
    figures.push({ command: 'import oci:', seed, requests: 0, faults: 0, retries: 0, byKind: {}, ms });
    if (!baselines.has('import oci:')) baselines.set('import oci:', ms);
    const index = await readIndex(dir);
    const named = new Map(index.manifests.map((d) => [d.annotations?.['org.opencontainers.image.ref.name'], d.digest]));
    for (const s of seeded) expect(named.get(`registry.example/${s.repository}:${s.tag}`)).toBe(s.digest);
  });
});

describe('the CLI under injected faults', () => {
  it('imports, counts its retries, and traces with --debug without upload session state', async () => {
    proxy.setSeed(5);
    const r = await airlock([
      'bundle',
      'import',
      bundle,
      '--to',
      `${proxy.host}/cli`,
      '--allow-unsigned',
      '--plain-http',
      '--timeout',
      '1s',
      '--json',
      '--debug',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { retries: number };
    expect(result.retries).toBe(r.stderr.split('\n').filter((l) => l.startsWith('retrying ')).length);
    const trace = r.stderr.split('\n').filter((l) => l.startsWith('http '));
    expect(trace.some((l) => /\/blobs\/uploads\/\S+\?_state=REDACTED&digest=sha256:/.test(l))).toBe(true);
    expect(trace.some((l) => /_state=(?!REDACTED)/.test(l))).toBe(false);
    for (const s of seeded) expect((await direct.getManifest(`cli/registry.example/${s.repository}`, s.tag)).digest).toBe(s.digest);
  });
});
