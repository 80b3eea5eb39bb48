import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { Layout } from '../../src/layout/layout.js';
import { expandImages, recordedName, type Endpoints } from '../../src/copy/expand.js';
import { resolveAll, resolveImage } from '../../src/copy/resolve.js';
import { planBundle } from '../../src/copy/plan.js';
import { parseAnyReference } from '../../src/ref/index.js';
import { parsePlatform, type Platform } from '../../src/oci/descriptor.js';
import { isAirlockError } from '../../src/errors.js';
import { sha256Digest } from '../../src/digest/digest.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

interface CorpusImage {
  name: string;
  digest: string;
  blobs: Array<{ digest: string; size: number }>;
}
let tmp: TempDir;
let corpus: { dir: string; images: CorpusImage[] };
let layout: Layout;
const endpoints: Endpoints = {
  registry: () => {
    throw new Error('no registry in this test');
  },
  layout: () => layout,
};

beforeAll(async () => {
  tmp = await makeTempDir('plan');
  corpus = await writeCorpus(`${tmp.path}/layout`);
  layout = new Layout(corpus.dir);
});
afterAll(() => tmp.remove());

const layoutRef = (name?: string) => parseAnyReference(name === undefined ? `oci:${corpus.dir}` : `oci:${corpus.dir}:${name}`);

describe('expand, resolve, plan over an OCI layout', () => {
  it('expands a whole layout to every named image, recorded under canonical names', async () => {
    const images = await expandImages([{ ref: layoutRef(), source: 'test' }], endpoints);
    expect(images.map((i) => i.name)).toEqual(corpus.images.map((i) => i.name));
  });

  it('resolves every image to the corpus digest and stores every blob once', async () => {
    const images = await expandImages([{ ref: layoutRef(), source: 'test' }], endpoints);
    const resolved = await Promise.all(images.map((i) => resolveImage(i)));
    for (const r of resolved) {
      expect(r.top.digest).toBe(corpus.images.find((c) => c.name === r.name)?.digest);
      expect(r.manifests.at(-1)).toBe(r.top);
    }
    // single-platform images (OCI and Docker v2) get their platform from the config
    expect(resolved.find((r) => r.name === 'docker.io/library/busybox:musl')?.platforms).toEqual(['linux/amd64']);
    expect(resolved.find((r) => r.name === 'quay.io/coreos/etcd:v2.3.8')?.platforms).toEqual(['linux/amd64']);
    expect(resolved.find((r) => r.name === 'quay.io/coreos/etcd:v3.4.1-arm64')?.platforms).toEqual(['linux/arm64/v8']);
    const plan = planBundle(resolved);
    const digests = plan.blobs.map((b) => b.desc.digest);
    expect(new Set(digests).size).toBe(digests.length);
    const expected = new Set(corpus.images.flatMap((c) => [c.digest, ...c.blobs.map((b) => b.digest)]));
    expect(new Set(digests)).toEqual(expected);
    expect(plan.totals.bytes).toBeLessThan(plan.totals.referencedBytes);
    // manifests and configs come before layers
    const firstLayer = plan.blobs.findIndex((b) => b.desc.mediaType.includes('layer') || b.desc.mediaType.includes('rootfs'));
    expect(plan.blobs.slice(firstLayer).every((b) => b.manifest === undefined)).toBe(true);
    const index = JSON.parse(plan.indexJson.toString()) as { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    expect(index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name'])).toEqual(corpus.images.map((i) => i.name));
  });

  it('resolves several at once, reporting and returning them in input order', async () => {
    const images = await expandImages([{ ref: layoutRef(), source: 'test' }], endpoints);
    const seen: string[] = [];
    const all = await resolveAll(images, { concurrency: 3, onResolved: (r) => seen.push(r.name) });
    expect(all.map((r) => r.name)).toEqual(images.map((i) => i.name));
    expect(seen).toEqual(images.map((i) => i.name));
  });

  it('keeps the verified config of a single-platform image, so the bundle writer does not fetch it again', async () => {
    const images = await expandImages([{ ref: layoutRef(), source: 'test' }], endpoints);
    const resolved = await resolveAll(images); // no onResolved listener: must not spin
    const single = resolved.filter((r) => r.top.kind === 'manifest');
    expect(single.length).toBeGreaterThan(0);
    const plan = planBundle(resolved);
    for (const r of single) {
      const config = r.top.kind === 'manifest' ? r.top.parsed.config : undefined;
      const bytes = r.configs.get(config!.digest);
      expect(bytes !== undefined && sha256Digest(bytes)).toBe(config!.digest);
      expect(plan.blobs.find((b) => b.desc.digest === config!.digest)?.bytes?.equals(bytes!)).toBe(true);
    }
    // Layers are never held in memory.
    const configs = new Set(resolved.flatMap((r) => r.manifests.flatMap((m) => (m.kind === 'manifest' ? [m.parsed.config.digest] : []))));
    const held = plan.blobs.filter((b) => b.manifest === undefined && !configs.has(b.desc.digest) && b.bytes !== undefined);
    expect(held.map((b) => b.desc.digest)).toEqual([]);
  });

  it('keeps an index whole when every platform is selected and filters it otherwise', async () => {
    const name = 'quay.io/coreos/etcd:v3.5.0';
    const upstream = corpus.images.find((c) => c.name === name)!;
    const both = ['linux/amd64', 'linux/arm64'].map(parsePlatform) as Platform[];
    const all = await resolveImage({ name, sourceRef: name, source: layout, repository: '', reference: name, platforms: both });
    expect(all.top.digest).toBe(upstream.digest);
    expect(all.platforms.sort()).toEqual(['linux/amd64', 'linux/arm64/v8']);
    const one = await resolveImage({ name, sourceRef: name, source: layout, repository: '', reference: name, platforms: [parsePlatform('linux/arm64')!] });
    expect(one.upstreamDigest).toBe(upstream.digest);
    expect(one.top.digest).not.toBe(upstream.digest);
    expect(one.platforms).toEqual(['linux/arm64/v8']);
    expect(one.top.kind === 'index' && one.top.parsed.manifests.length).toBe(1);
  });

  it('refuses a platform the image does not have, naming what it has', async () => {
    const name = 'quay.io/coreos/etcd:v3.5.0';
    const err = await resolveImage({
      name,
      sourceRef: name,
      source: layout,
      repository: '',
      reference: name,
      platforms: [parsePlatform('linux/s390x')!],
    }).catch((e: unknown) => e);
    expect(isAirlockError(err, 'NOT_FOUND')).toBe(true);
    expect((err as Error).message).toContain('linux/s390x');
  });

  it('names a missing image and lists what the layout has', async () => {
    const err = await expandImages([{ ref: layoutRef('quay.io/coreos/etcd:v9'), source: 'test' }], endpoints)
      .then((imgs) => resolveImage(imgs[0]!))
      .catch((e: unknown) => e);
    expect(isAirlockError(err, 'NOT_FOUND')).toBe(true);
    expect((err as Error).message).toContain('quay.io/coreos/etcd:v9');
  });

  it('detects a corrupted manifest blob in a layout', async () => {
    const t = await makeTempDir('plan-bad');
    try {
      const c = (await writeCorpus(`${t.path}/l`)) as typeof corpus;
      const img = c.images[0]!;
      const file = `${c.dir}/blobs/sha256/${img.digest.slice(7)}`;
      const bytes = await readFile(file);
      bytes[bytes.length - 2] = bytes[bytes.length - 2]! ^ 1;
      await writeFile(file, bytes);
      const err = await resolveImage({ name: img.name, sourceRef: img.name, source: new Layout(c.dir), repository: '', reference: img.name }).catch(
        (e: unknown) => e,
      );
      expect(isAirlockError(err, 'INTEGRITY')).toBe(true);
    } finally {
      await t.remove();
    }
  });
});

describe('recordedName', () => {
  it.each([
    ['quay.io/coreos/etcd:v3.3', 'quay.io/coreos/etcd:v3.3'],
    ['index.docker.io/library/busybox:musl', 'docker.io/library/busybox:musl'],
    ['localhost/app:1', 'localhost/app:1'],
    ['v1', 'v1'],
    ['myimage:latest', 'myimage:latest'],
  ])('%s → %s', (input, expected) => {
    expect(recordedName(input)).toBe(expected);
  });
});
