import { generateKeyPairSync } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveWriter } from '../../src/bundle/archive-writer.js';
import { keyIdOf, type SigningKey, type TrustedKey } from '../../src/bundle/keys.js';
import {
  BUNDLE_MEDIA_TYPE,
  serializeBundleManifest,
  validateBundleManifest,
  type BundleManifest,
  type BundleParent,
  type ExternalBlob,
} from '../../src/bundle/manifest.js';
import { signBundle } from '../../src/bundle/signing.js';
import { sha256Digest, type Digest } from '../../src/digest/digest.js';
import { isAirlockError } from '../../src/errors.js';
import { writeInventory } from '../../src/inventory/format.js';
import { planBundle } from '../../src/copy/plan.js';
import type { ResolvedImage } from '../../src/copy/resolve.js';
import { loadSince, readHeadFile, type DeliveredSet } from '../../src/copy/since.js';
import type { ProgressEvent } from '../../src/copy/progress.js';
import type { Source } from '../../src/transport/types.js';
import { bundleManifest } from '../../src/bundle/bundle-json.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const d = (s: string): Digest => sha256Digest(s);
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const CONFIG = 'application/vnd.oci.image.config.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const NOW = new Date('2026-11-28T12:00:00Z');

function key(): { signing: SigningKey; trusted: TrustedKey } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const keyId = keyIdOf(publicKey);
  return { signing: { privateKey, keyId }, trusted: { publicKey, keyId, path: 'k.pub' } };
}

/** A valid bundle.json carrying `blobs` (name → size), one image whose manifest is the first blob. */
function manifest(created: string, blobs: Array<[string, number]>, delta?: { parents: BundleParent[]; external: ExternalBlob[] }): BundleManifest {
  const list = blobs.map(([n, size], i) => ({ digest: d(n), size, mediaType: i === 0 ? MANIFEST : LAYER }));
  const bytes = list.reduce((n, b) => n + b.size, 0);
  const externalBytes = (delta?.external ?? []).reduce((n, b) => n + b.size, 0);
  const m: BundleManifest = {
    schemaVersion: 1,
    mediaType: BUNDLE_MEDIA_TYPE,
    created,
    creator: 'airlock/test',
    images: [{ name: `example.com/app:${created}`, source: 'x', digest: list[0]!.digest, mediaType: MANIFEST, size: list[0]!.size, platforms: [] }],
    blobs: list,
    layout: { 'oci-layout': { digest: d('l'), size: 30 }, 'index.json': { digest: d('i'), size: 200 } },
    totals: { images: 1, blobs: list.length, bytes, referencedBytes: bytes + externalBytes, ...(delta ? { externalBytes } : {}) },
    ...(delta ?? {}),
  };
  expect(validateBundleManifest(m)).toEqual([]);
  return m;
}

let tmp: TempDir;
let n = 0;
const signer = key();
const stranger = key();

beforeAll(async () => {
  tmp = await makeTempDir('since');
});
afterAll(() => tmp.remove());

/** Write `m` as an exported manifest (with `.sig` when `by` is given); returns path and id. */
async function exported(m: BundleManifest, by?: SigningKey): Promise<{ path: string; id: Digest }> {
  const path = `${tmp.path}/m${++n}.json`;
  const bytes = serializeBundleManifest(m);
  await writeFile(path, bytes);
  if (by !== undefined) await writeFile(`${path}.sig`, signBundle(bytes, by).bytes);
  return { path, id: sha256Digest(bytes) };
}

/** Write `m` as the head of an archive (followed by a 2 MiB entry, so a head copy is a real cut). */
async function archive(m: BundleManifest, by?: SigningKey): Promise<{ path: string; id: Digest }> {
  const path = `${tmp.path}/b${++n}.tar.zst`;
  const bytes = serializeBundleManifest(m);
  const w = await ArchiveWriter.create(path, { mtime: new Date(m.created) });
  await w.addBuffer('bundle.json', bytes, { compress: true });
  if (by !== undefined) await w.addBuffer('bundle.json.sig', signBundle(bytes, by).bytes, { compress: true });
  await w.addBuffer('blobs/sha256/filler', Buffer.alloc(2 << 20, 7), { compress: false });
  await w.finish();
  return { path, id: sha256Digest(bytes) };
}

async function errorOf(p: Promise<unknown>): Promise<{ code: string; message: string; hint?: string }> {
  try {
    await p;
  } catch (err) {
    if (isAirlockError(err)) return { code: err.code, message: err.message, hint: err.hint };
    throw err;
  }
  throw new Error('expected an error');
}

const gen1Manifest = () =>
  manifest('2026-11-01T00:00:00Z', [
    ['m1', 10],
    ['base', 1000],
    ['app-v1', 500],
  ]);

describe('loadSince: bundles', () => {
  it('reads a signed archive, and the same from a head-only copy of its first bytes', async () => {
    const gen1 = await archive(gen1Manifest(), signer.signing);
    const head = `${gen1.path}.head`;
    const fh = await open(gen1.path, 'r');
    const cut = Buffer.alloc(64 << 10);
    await fh.read(cut, 0, cut.length, 0);
    await fh.close();
    await writeFile(head, cut);
    await expect(readFile(head)).resolves.toHaveLength(64 << 10);
    for (const path of [gen1.path, head]) {
      const set = await loadSince([path], { signingKey: signer.signing, now: NOW });
      expect(set.parents).toEqual([{ id: gen1.id, created: '2026-11-01T00:00:00Z', keyId: signer.signing.keyId, kind: 'bundle' }]);
      expect(set.blobs.get(d('base'))).toEqual({ size: 1000, bundle: gen1.id });
      expect(set.blobs.size).toBe(3);
    }
    // both at once: one parent
    expect((await loadSince([gen1.path, head], { signingKey: signer.signing, now: NOW })).parents).toHaveLength(1);
  });

  it('a delta PREV contributes only what it carried; each blob is attributed to the bundle that carries it', async () => {
    const g1 = gen1Manifest();
    const gen1 = await archive(g1, signer.signing);
    const g2 = manifest(
      '2026-11-08T00:00:00Z',
      [
        ['m2', 11],
        ['app-v2', 600],
      ],
      {
        parents: [{ id: gen1.id, created: g1.created, keyId: signer.signing.keyId, kind: 'bundle' }],
        external: [{ digest: d('base'), size: 1000, mediaType: LAYER, bundle: gen1.id }],
      },
    );
    const gen2 = await archive(g2, signer.signing);
    for (const order of [
      [gen1.path, gen2.path],
      [gen2.path, gen1.path],
    ]) {
      const set = await loadSince(order, { signingKey: signer.signing, now: NOW });
      expect(set.parents.map((p) => p.id)).toEqual([gen1.id, gen2.id]);
      expect(set.blobs.get(d('base'))?.bundle).toBe(gen1.id);
      expect(set.blobs.get(d('app-v1'))?.bundle).toBe(gen1.id);
      expect(set.blobs.get(d('app-v2'))?.bundle).toBe(gen2.id);
    }
    // gen2 alone: it never carried `base`, so `base` is not delivered, and the operator is told
    const events: ProgressEvent[] = [];
    const only2 = await loadSince([gen2.path], { signingKey: signer.signing, now: NOW, onProgress: (e) => events.push(e) });
    expect(only2.blobs.has(d('base'))).toBe(false);
    expect(events.some((e) => e.kind === 'warning' && /delta of 1 bundle\(s\) not given/.test(e.message))).toBe(true);
  });

  it('refuses a parent of another signer, an unsigned archive and a modified manifest; accepts an exported manifest', async () => {
    const other = await archive(gen1Manifest(), stranger.signing);
    const e1 = await errorOf(loadSince([other.path], { signingKey: signer.signing, now: NOW }));
    expect(e1.code).toBe('SIGNATURE');
    expect(e1.message).toContain(`was signed by key ${stranger.signing.keyId}, this bundle by ${signer.signing.keyId}`);
    expect(e1.hint).toMatch(/--since only bundles of the same signer/);

    const unsigned = await archive(gen1Manifest());
    expect((await errorOf(loadSince([unsigned.path], { signingKey: signer.signing, now: NOW }))).message).toMatch(/is unsigned, this bundle is signed/);
    // an unsigned delta may build on anything; the claimed signer is recorded
    expect((await loadSince([other.path], { now: NOW })).parents[0]?.keyId).toBe(stranger.signing.keyId);

    const warnings: string[] = [];
    const bare = await exported(gen1Manifest());
    const set = await loadSince([bare.path], { signingKey: signer.signing, now: NOW, onProgress: (e) => e.kind === 'warning' && warnings.push(e.message) });
    expect(set.parents[0]).toEqual({ id: bare.id, created: '2026-11-01T00:00:00Z', kind: 'bundle' });
    expect(warnings.join()).toMatch(/without its signature/);

    const withSig = await exported(gen1Manifest(), signer.signing);
    expect((await loadSince([withSig.path], { signingKey: signer.signing, now: NOW })).parents[0]?.keyId).toBe(signer.signing.keyId);
    await writeFile(
      withSig.path,
      serializeBundleManifest(
        manifest('2026-11-01T00:00:00Z', [
          ['m1', 10],
          ['base', 1001],
        ]),
      ),
    );
    expect((await errorOf(loadSince([withSig.path], { signingKey: signer.signing, now: NOW }))).message).toMatch(/modified after it was signed/);
    const forged = await exported(gen1Manifest(), stranger.signing);
    expect((await errorOf(loadSince([forged.path], { signingKey: signer.signing, now: NOW }))).code).toBe('SIGNATURE');
  });

  it('refuses a cycle or a mismatched base', async () => {
    const g1 = gen1Manifest();
    const gen1 = await exported(g1);
    const parent = { id: gen1.id, created: g1.created, kind: 'bundle' as const };
    // a parent younger than its child
    const early = await exported(manifest('2026-10-01T00:00:00Z', [['m2', 11]], { parents: [parent], external: [] }));
    const cycle = await errorOf(loadSince([early.path, gen1.path], { now: NOW }));
    expect(cycle).toMatchObject({ code: 'INPUT_INVALID' });
    expect(cycle.message).toMatch(/^cycle: /);
    // a PREV from the future
    const future = await exported(manifest('2027-01-01T00:00:00Z', [['m3', 1]]));
    expect((await errorOf(loadSince([future.path], { now: NOW }))).message).toMatch(/^cycle: .* after this bundle/);
    // gen2 says gen1 delivered a blob that gen1 does not list
    const liar = await exported(
      manifest('2026-11-08T00:00:00Z', [['m2', 11]], { parents: [parent], external: [{ digest: d('nowhere'), size: 5, mediaType: LAYER, bundle: gen1.id }] }),
    );
    const base = await errorOf(loadSince([gen1.path, liar.path], { now: NOW }));
    expect(base.code).toBe('INPUT_INVALID');
    expect(base.message).toMatch(/^mismatched base: .* expects .* which does not deliver it/);
    // gen2 records its parent with another created time than the file given
    const wrongParent = await exported(
      manifest('2026-11-08T00:00:00Z', [['m2', 11]], { parents: [{ ...parent, created: '2026-10-31T00:00:00Z' }], external: [] }),
    );
    expect((await errorOf(loadSince([gen1.path, wrongParent.path], { now: NOW }))).message).toMatch(/^mismatched base: .* records parent/);
    // two PREVs disagree on a blob's size
    const other = await exported(
      manifest('2026-11-02T00:00:00Z', [
        ['mx', 3],
        ['base', 999],
      ]),
    );
    expect((await errorOf(loadSince([gen1.path, other.path], { now: NOW }))).message).toMatch(/is 1000 bytes in .* but 999 bytes/);
  });

  it('refuses what is neither a bundle, a manifest nor an inventory', async () => {
    const path = `${tmp.path}/junk.txt`;
    await writeFile(path, 'hello');
    expect(await errorOf(loadSince([path], { now: NOW }))).toMatchObject({ code: 'INPUT_INVALID' });
    await writeFile(path, '{"mediaType":"application/json"}');
    expect((await errorOf(loadSince([path], { now: NOW }))).message).toMatch(/not an airlock bundle, exported bundle.json or inventory/);
    expect((await errorOf(loadSince([`${tmp.path}/missing`], { now: NOW }))).code).toBe('INPUT_INVALID');
    await expect(readHeadFile(path)).rejects.toThrow(/invalid bundle.json/);
  });
});

describe('loadSince: inventories', () => {
  const payload = (created: string) => ({
    schemaVersion: 1 as const,
    created,
    target: 'registry.lan',
    images: [],
    blobs: [
      { digest: d('base'), size: 1000 },
      { digest: d('only-there'), size: 42 },
    ],
  });
  const inventory = async (created: string, by?: SigningKey): Promise<string> => {
    const path = `${tmp.path}/have${++n}.json`;
    await writeFile(path, writeInventory(payload(created), by));
    return path;
  };

  it('delivers what it lists, under its id; a bundle is preferred for a blob both delivered', async () => {
    const have = await inventory('2026-11-27T00:00:00Z');
    const inv = await loadSince([have], { signingKey: signer.signing, now: NOW });
    const id = sha256Digest(JSON.stringify(payload('2026-11-27T00:00:00Z')));
    expect(inv.parents).toEqual([{ id, created: '2026-11-27T00:00:00Z', kind: 'inventory' }]);
    expect(inv.blobs.get(d('only-there'))).toEqual({ size: 42, bundle: id });
    const gen1 = await exported(gen1Manifest(), signer.signing);
    const both = await loadSince([have, gen1.path], { signingKey: signer.signing, now: NOW });
    expect(both.blobs.get(d('base'))?.bundle).toBe(gen1.id);
    expect(both.blobs.get(d('only-there'))?.bundle).toBe(id);
    expect(both.parents.map((p) => p.kind)).toEqual(['bundle', 'inventory']);
  });

  it('refuses a stale inventory or one from the future; checks its signature against --trust', async () => {
    const old = await inventory('2026-10-01T00:00:00Z');
    const stale = await errorOf(loadSince([old], { now: NOW }));
    expect(stale.code).toBe('INPUT_INVALID');
    expect(stale.message).toMatch(/is stale: made 2026-10-01T00:00:00Z, 58 days ago/);
    expect((await loadSince([old], { now: NOW, maxInventoryAgeMs: 60 * 86_400_000 })).parents).toHaveLength(1);
    expect((await errorOf(loadSince([await inventory('2026-12-01T00:00:00Z')], { now: NOW }))).message).toMatch(/after this bundle/);
    expect((await errorOf(loadSince([await inventory('yesterday')], { now: NOW }))).message).toMatch(/not an RFC 3339 UTC time/);

    const signed = await inventory('2026-11-27T00:00:00Z', stranger.signing);
    expect((await loadSince([signed], { now: NOW, inventoryTrust: [stranger.trusted] })).parents[0]?.keyId).toBe(stranger.signing.keyId);
    expect((await errorOf(loadSince([signed], { now: NOW, inventoryTrust: [signer.trusted] }))).code).toBe('SIGNATURE');
    const unchecked = await loadSince([signed], { now: NOW });
    expect(unchecked.parents[0]?.keyId).toBeUndefined();
  });
});

describe('planBundle with delivered blobs', () => {
  const source = { description: 'registry test' } as unknown as Source;
  /** One single-platform image: manifest → config + layers (name → size). */
  function image(name: string, config: [string, number], layers: Array<[string, number]>): ResolvedImage {
    const desc = (n: string, size: number, mediaType: string) => ({ digest: d(n), size, mediaType });
    const parsed = { schemaVersion: 2 as const, mediaType: MANIFEST, config: desc(...config, CONFIG), layers: layers.map(([n, s]) => desc(n, s, LAYER)) };
    const bytes = Buffer.from(JSON.stringify(parsed));
    const top = { kind: 'manifest' as const, bytes, mediaType: MANIFEST, digest: sha256Digest(bytes), parsed };
    return {
      name,
      sourceRef: name,
      source,
      repository: 'app',
      top,
      manifests: [top],
      blobs: [parsed.config, ...parsed.layers],
      platforms: ['linux/amd64'],
      configs: new Map(),
    };
  }
  const images = () => [
    image(
      'example.com/a:v2',
      ['cfg-a2', 10],
      [
        ['base', 1000],
        ['app-v2', 600],
      ],
    ),
    image(
      'example.com/b:v1',
      ['cfg-b', 12],
      [
        ['base', 1000],
        ['b', 300],
      ],
    ),
  ];
  const parents: BundleParent[] = [{ id: d('gen1'), created: '2026-11-01T00:00:00Z', kind: 'bundle' }];
  /** `base` and `extra` (names, or digests as they are) delivered by gen1. */
  const delivered = (extra: Array<[string, number]> = []): DeliveredSet => ({
    parents,
    blobs: new Map(
      [['base', 1000] as [string, number], ...extra].map(([n, size]) => [n.startsWith('sha256:') ? (n as Digest) : d(n), { size, bundle: d('gen1') }]),
    ),
  });

  it('carries every manifest and only undelivered configs and layers', () => {
    const top = images()[0]!.top.digest;
    const plan = planBundle(images(), {
      delivered: delivered([
        ['cfg-b', 12],
        [top, images()[0]!.top.bytes.length],
      ]),
    });
    expect(plan.blobs.map((b) => b.desc.digest)).toEqual([top, d('cfg-a2'), images()[1]!.top.digest, d('app-v2'), d('b')]);
    expect(plan.external).toEqual([
      { digest: d('cfg-b'), size: 12, mediaType: CONFIG, bundle: d('gen1') },
      { digest: d('base'), size: 1000, mediaType: LAYER, bundle: d('gen1') },
    ]);
    expect(plan.parents).toBe(parents);
    expect(plan.totals.bytes).toBe(plan.blobs.reduce((n, b) => n + b.desc.size, 0));
    expect(plan.totals.externalBytes).toBe(1012);
    const m = bundleManifest(plan, new Date('2026-11-28T00:00:00Z'));
    expect(validateBundleManifest(m)).toEqual([]);
    // deterministic: the same inputs give the same bytes (resume relies on it)
    expect(serializeBundleManifest(bundleManifest(planBundle(images(), { delivered: delivered([['cfg-b', 12]]) }), new Date(0)))).toEqual(
      serializeBundleManifest(bundleManifest(planBundle(images(), { delivered: delivered([['cfg-b', 12]]) }), new Date(0))),
    );
  });

  it('a delta whose every blob was delivered carries only manifests; without delivered nothing changes', () => {
    const all = planBundle(images(), {
      delivered: delivered([
        ['cfg-a2', 10],
        ['app-v2', 600],
        ['cfg-b', 12],
        ['b', 300],
      ]),
    });
    expect(all.blobs.every((b) => b.manifest !== undefined)).toBe(true);
    expect(validateBundleManifest(bundleManifest(all, new Date(0)))).toEqual([]);
    const full = planBundle(images());
    expect(full.external).toBeUndefined();
    expect(full.totals.externalBytes).toBeUndefined();
    expect(bundleManifest(full, new Date(0))).not.toHaveProperty('parents');
  });

  it('refuses a delivered blob of another size', () => {
    expect(() => planBundle(images(), { delivered: delivered([['b', 301]]) })).toThrow(/mismatched base: .* 300 bytes .* 301 bytes/);
  });
});
