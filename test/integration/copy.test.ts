/**
 * `airlock copy` between real endpoints: layout → registry, registry → layout and registry →
 * registry, each checked with skopeo (an independent client) for the exact upstream digests; a
 * rerun copies nothing; copies through the seeded fault proxy converge to the same state; content
 * that does not match its digest is refused with nothing tagged.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus, type Corpus } from '../../samples/corpus.mjs';
import { expandImages } from '../../src/copy/expand.js';
import type { Digest } from '../../src/digest/digest.js';
import { isAirlockError } from '../../src/errors.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { readIndex } from '../../src/layout/index-file.js';
import { Layout } from '../../src/layout/layout.js';
import { blobFile } from '../../src/layout/paths.js';
import { copyImages } from '../../src/ops/copy.js';
import { parseImportTarget } from '../../src/names/import-names.js';
import type { RegistryClient } from '../../src/registry/client.js';
import { airlock } from '../support/cli.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { fastClient } from '../support/faults.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { skopeoInspectRaw } from '../support/skopeo.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const IMAGES = ['docker.io/library/busybox:musl', 'quay.io/coreos/etcd:v3.3.0', 'quay.io/coreos/etcd:v3.5.0', 'quay.io/coreos/etcd:v2.3.8'];
/** The corpus image in Docker v2s2 format. */
const DOCKER_FORMAT = 'quay.io/coreos/etcd:v2.3.8';
/** Seeds of the faulted copies: fewer than the fault suites', which cover the engine's requests already. */
const SEEDS = [1, 2, 3, 4, 5, 6];

let tmp: TempDir;
let corpus: Corpus;
let upstream: TestRegistry;
let mirror: TestRegistry;
let proxy: FaultProxy;
const digests = new Map<string, string>();

beforeAll(async () => {
  tmp = await makeTempDir('copy');
  corpus = await writeCorpus(join(tmp.path, 'corpus'));
  const index = await readIndex(corpus.dir);
  for (const d of index.manifests) {
    const name = d.annotations?.['org.opencontainers.image.ref.name'];
    if (name !== undefined && IMAGES.includes(name)) digests.set(name, d.digest);
  }
  expect([...digests.keys()].sort()).toEqual([...IMAGES].sort());
  [upstream, mirror] = await Promise.all([startRegistry(), startRegistry()]);
  proxy = await startFaultProxy({ target: mirror.host, rate: 0.15 });
});

afterAll(async () => {
  await proxy?.close();
  await Promise.all([upstream?.stop(), mirror?.stop()]);
  await tmp?.remove();
});

/** The digest skopeo sees at `ref` (docker://… or oci:…). */
async function digestAt(ref: string): Promise<string> {
  return (await skopeoInspectRaw(ref, { tlsVerify: false })).digest;
}

describe('airlock copy (CLI)', () => {
  it('layout → registry: every image under its upstream name, with its digest; a rerun copies nothing', async () => {
    const r = await airlock(['copy', ...IMAGES.map((n) => `oci:${corpus.dir}:${n}`), `${upstream.host}/up`, '--plain-http', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { images: Array<{ name: string; reference: string; digest: string }>; blobs: { uploaded: number; mounted: number } };
    expect(result.images.map((i) => i.reference)).toEqual(IMAGES.map((n) => `${upstream.host}/up/${n}`));
    for (const name of IMAGES) expect(await digestAt(`docker://${upstream.host}/up/${name}`)).toBe(digests.get(name));
    expect(result.blobs.uploaded).toBeGreaterThan(0);
    const again = await airlock(['copy', ...IMAGES.map((n) => `oci:${corpus.dir}:${n}`), `${upstream.host}/up`, '--plain-http', '--json']);
    expect(again.code, again.stderr).toBe(0);
    const second = JSON.parse(again.stdout) as { blobs: { uploaded: number; mounted: number } };
    expect(second.blobs.uploaded + second.blobs.mounted).toBe(0);
  });

  it('registry → layout: skopeo reads every image from the layout with its digest', async () => {
    const dir = join(tmp.path, 'drained');
    const refs = IMAGES.map((n) => `${upstream.host}/up/${n}`);
    const r = await airlock(['copy', ...refs, `oci:${dir}`, '--plain-http', '--strip-host']);
    expect(r.code, r.stderr).toBe(0);
    // --strip-host drops the host of the source reference (the upstream registry here). skopeo
    // reads only OCI media types from a layout: the Docker-format image is checked in index.json.
    const named = new Map((await readIndex(dir)).manifests.map((d) => [d.annotations?.['org.opencontainers.image.ref.name'], d.digest]));
    for (const name of IMAGES) {
      expect(named.get(`up/${name}`)).toBe(digests.get(name));
      if (name !== DOCKER_FORMAT) expect(await digestAt(`oci:${dir}:up/${name}`)).toBe(digests.get(name));
    }
  });

  it('registry → registry, repositories of a tag filter from an image list', async () => {
    const list = join(tmp.path, 'images.yaml');
    await writeFile(list, `version: 1\nimages:\n  - ref: ${upstream.host}/up/quay.io/coreos/etcd\n    tags: { semver: ">=3.3.0" }\n`);
    const r = await airlock(['copy', '-f', list, `${mirror.host}/m`, '--plain-http', '--strip-host', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { images: Array<{ reference: string }> };
    expect(result.images.map((i) => i.reference).sort()).toEqual([
      `${mirror.host}/m/up/quay.io/coreos/etcd:v3.3.0`,
      `${mirror.host}/m/up/quay.io/coreos/etcd:v3.5.0`,
    ]);
    for (const tag of ['v3.3.0', 'v3.5.0']) {
      expect(await digestAt(`docker://${mirror.host}/m/up/quay.io/coreos/etcd:${tag}`)).toBe(digests.get(`quay.io/coreos/etcd:${tag}`));
    }
  });

  it('says how to call it when the target or the images are missing', async () => {
    const r = await airlock(['copy', `${mirror.host}/m`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no images to copy');
    expect(r.stderr).toContain('airlock copy SRC... DST');
  });
});

describe('airlock copy into a registry under injected faults', () => {
  let faults = 0;
  it.each(SEEDS)('seed %i: every image lands with its digest', async (seed) => {
    proxy.setSeed(seed);
    const reader = fastClient(upstream.host);
    const sink = fastClient(proxy.host);
    try {
      const listed = imageListFromRefs(IMAGES.map((n) => `${upstream.host}/up/${n}`)).entries;
      const images = await expandImages(listed, { registry: () => reader, layout: (d) => new Layout(d) });
      await copyImages({ images, target: parseImportTarget(`${proxy.host}/f${seed}`), sink, stripHost: true, retry: { baseDelayMs: 20, maxDelayMs: 250 } });
    } finally {
      await Promise.all([reader.close(), sink.close()]);
    }
    faults += proxy.stats.faults;
    const direct: RegistryClient = fastClient(mirror.host);
    try {
      for (const name of IMAGES) {
        const { repository, tag } = { repository: `f${seed}/up/${name.slice(0, name.lastIndexOf(':'))}`, tag: name.slice(name.lastIndexOf(':') + 1) };
        expect((await direct.getManifest(repository, tag)).digest).toBe(digests.get(name));
      }
    } finally {
      await direct.close();
    }
  });

  it('met faults at all (else the seeds above proved nothing)', () => {
    expect(faults).toBeGreaterThan(SEEDS.length);
  });
});

describe('airlock copy of content that does not match its digest', () => {
  it('refuses it and tags nothing', async () => {
    const damaged = join(tmp.path, 'damaged');
    await writeCorpus(damaged, { images: [{ name: 'example.com/app:v1', layers: [{ id: 'app', size: 16 * 1024 }] }] });
    const index = await readIndex(damaged);
    const top = index.manifests[0]!;
    const manifest = JSON.parse(await readFile(blobFile(damaged, top.digest), 'utf8')) as { layers: Array<{ digest: Digest }> };
    const layer = blobFile(damaged, manifest.layers[0]!.digest);
    const bytes = await readFile(layer);
    bytes[100] = bytes[100]! ^ 0xff;
    await writeFile(layer, bytes);
    const sink = fastClient(mirror.host);
    try {
      const images = await expandImages(imageListFromRefs([`oci:${damaged}:example.com/app:v1`]).entries, {
        registry: () => sink,
        layout: (d) => new Layout(d),
      });
      const err = await copyImages({ images, target: parseImportTarget(`${mirror.host}/bad`), sink }).catch((e: unknown) => e);
      expect(isAirlockError(err, 'INTEGRITY'), String(err)).toBe(true);
      expect((err as Error).message).toContain(manifest.layers[0]!.digest);
      expect(await sink.headManifest('bad/example.com/app', 'v1')).toBeUndefined();
    } finally {
      await sink.close();
    }
  });
});
