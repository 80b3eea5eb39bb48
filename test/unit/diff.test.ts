import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE_MEDIA_TYPE, serializeBundleManifest, validateBundleManifest, type BundleManifest } from '../../src/bundle/manifest.js';
import { sha256Digest, type Digest } from '../../src/digest/digest.js';
import { diffBundles, diffManifests, type DiffSide } from '../../src/ops/diff.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const d = (s: string): Digest => sha256Digest(s);
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** images: name → manifest blob name; blobs: name → size (manifests included); external: name → size. */
function manifest(
  created: string,
  images: Record<string, string>,
  blobs: Record<string, number>,
  delta?: { parent: Digest; external: Record<string, number> },
): BundleManifest {
  const list = Object.entries(blobs).map(([n, size]) => ({ digest: d(n), size, mediaType: n.startsWith('m-') ? MANIFEST : LAYER }));
  const external = Object.entries(delta?.external ?? {}).map(([n, size]) => ({ digest: d(n), size, mediaType: LAYER, bundle: delta!.parent }));
  const bytes = list.reduce((n, b) => n + b.size, 0);
  const externalBytes = external.reduce((n, b) => n + b.size, 0);
  const m: BundleManifest = {
    schemaVersion: 1,
    mediaType: BUNDLE_MEDIA_TYPE,
    created,
    creator: 'airlock/test',
    images: Object.entries(images).map(([name, m]) => ({ name, source: name, digest: d(m), mediaType: MANIFEST, size: blobs[m]!, platforms: [] })),
    blobs: list,
    layout: { 'oci-layout': { digest: d('l'), size: 30 }, 'index.json': { digest: d('i'), size: 200 } },
    totals: { images: Object.keys(images).length, blobs: list.length, bytes, referencedBytes: bytes + externalBytes, ...(delta ? { externalBytes } : {}) },
    ...(delta ? { parents: [{ id: delta.parent, created: '2026-11-01T00:00:00Z', kind: 'bundle' as const }], external } : {}),
  };
  expect(validateBundleManifest(m)).toEqual([]);
  return m;
}

const gen1 = manifest(
  '2026-11-01T00:00:00Z',
  { 'example.com/app:v1': 'm-app1', 'example.com/app:stable': 'm-app1', 'example.com/old:v1': 'm-old' },
  { 'm-app1': 10, 'm-old': 11, base: 1000, app1: 500, old: 70 },
);
const gen1Id = sha256Digest(serializeBundleManifest(gen1));
/** gen2: stable moves to app2, new image added, old image dropped; a delta of gen1. */
const gen2 = manifest(
  '2026-11-08T00:00:00Z',
  { 'example.com/app:v1': 'm-app1', 'example.com/app:stable': 'm-app2', 'example.com/app:v2': 'm-app2', 'example.com/new:v1': 'm-new' },
  { 'm-app1': 10, 'm-app2': 12, 'm-new': 13, app2: 600, new: 300 },
  { parent: gen1Id, external: { base: 1000, app1: 500 } },
);
const side = (m: BundleManifest, path: string): DiffSide => ({
  path,
  bundleId: sha256Digest(serializeBundleManifest(m)),
  created: m.created,
  delta: m.parents !== undefined,
});

describe('bundle diff', () => {
  it('names added, removed and retagged images, and the blobs new in B with their bytes', () => {
    const r = diffManifests(side(gen1, 'a'), gen1, side(gen2, 'b'), gen2);
    expect(r.relation).toBe('b-builds-on-a');
    expect(r.added).toEqual([
      { name: 'example.com/app:v2', digest: d('m-app2') },
      { name: 'example.com/new:v1', digest: d('m-new') },
    ]);
    expect(r.removed).toEqual([{ name: 'example.com/old:v1', digest: d('m-old') }]);
    expect(r.retagged).toEqual([{ name: 'example.com/app:stable', from: d('m-app1'), to: d('m-app2') }]);
    expect(r.unchanged).toBe(1);
    // B's external blobs were A's: not new. The manifest m-app1 is carried again: not new either.
    expect(r.newBlobs.map((b) => b.digest).sort()).toEqual([d('m-app2'), d('m-new'), d('app2'), d('new')].sort());
    expect(r.newBlobs.every((b) => b.carried)).toBe(true);
    expect(r.newBytes).toBe(12 + 13 + 600 + 300);
    expect(r.droppedBlobs).toBe(2);
    expect(r.droppedBytes).toBe(11 + 70);
  });

  it('the other way round, and a bundle against itself', () => {
    const back = diffManifests(side(gen2, 'b'), gen2, side(gen1, 'a'), gen1);
    expect(back.relation).toBe('a-builds-on-b');
    expect(back.added.map((i) => i.name)).toEqual(['example.com/old:v1']);
    expect(back.retagged).toEqual([{ name: 'example.com/app:stable', from: d('m-app2'), to: d('m-app1') }]);
    expect(back.newBytes).toBe(11 + 70);
    const same = diffManifests(side(gen1, 'a'), gen1, side(gen1, 'a'), gen1);
    expect(same).toMatchObject({ relation: 'same', added: [], removed: [], retagged: [], unchanged: 3, newBlobs: [], newBytes: 0, droppedBlobs: 0 });
  });

  it('counts a blob B only lists as external as new when A never had it', () => {
    const gen3 = manifest('2026-11-15T00:00:00Z', { 'example.com/new:v1': 'm-new' }, { 'm-new': 13 }, { parent: d('gen2'), external: { new: 300 } });
    const r = diffManifests(side(gen1, 'a'), gen1, side(gen3, 'c'), gen3);
    expect(r.relation).toBe('unrelated');
    expect(r.newBlobs).toEqual([
      { digest: d('m-new'), size: 13, mediaType: MANIFEST, carried: true },
      { digest: d('new'), size: 300, mediaType: LAYER, carried: false },
    ]);
  });

  describe('from files', () => {
    let tmp: TempDir;
    beforeAll(async () => {
      tmp = await makeTempDir('diff');
    });
    afterAll(() => tmp.remove());

    it('reads exported manifests', async () => {
      await writeFile(`${tmp.path}/a.json`, serializeBundleManifest(gen1));
      await writeFile(`${tmp.path}/b.json`, serializeBundleManifest(gen2));
      const r = await diffBundles(`${tmp.path}/a.json`, `${tmp.path}/b.json`);
      expect(r.a).toEqual({ path: `${tmp.path}/a.json`, bundleId: gen1Id, created: gen1.created, delta: false });
      expect(r.b.delta).toBe(true);
      expect(r.relation).toBe('b-builds-on-a');
      await writeFile(`${tmp.path}/c.json`, 'not json');
      await expect(diffBundles(`${tmp.path}/a.json`, `${tmp.path}/c.json`)).rejects.toThrow(/neither a zstd archive nor JSON/);
    });
  });
});
