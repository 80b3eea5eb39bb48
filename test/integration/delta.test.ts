/**
 * Delta bundles against the real docker-registry, three generations of a mirror:
 * gen1 a full bundle; gen2 `--since gen1` after one tag moved and one image was added (it must
 * carry exactly the new configs and layers); gen3 `--since gen1 --since gen2` after another move,
 * and the same from a 1 MiB head-only copy of gen1. Each verifies and lists what it expects at the
 * target; `bundle diff` names the changes; a parent of another signer is refused with nothing
 * written; an interrupted delta resumes into the same bytes.
 */
import { existsSync } from 'node:fs';
import { copyFile, open, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus, type Corpus } from '../../samples/corpus.mjs';
import type { BundleManifest, ExternalBlob } from '../../src/bundle/manifest.js';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { readHeadFile } from '../../src/copy/since.js';
import type { DiffResult } from '../../src/ops/diff.js';
import { airlock } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry } from '../support/seed.js';
import { skopeoInspectRaw } from '../support/skopeo.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const KiB = 1024;
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** 1.5 MiB of random content: gen1 is larger than the 1 MiB head copy. */
const base = { id: 'delta-base', size: 1536 * KiB, randomRatio: 1, files: 2 };
const layer = (id: string) => ({ id, size: 128 * KiB, files: 1 });

let tmp: TempDir;
let reg: TestRegistry;
let corpora: Corpus[];
let refs: string[];
const path = (name: string) => `${tmp.path}/${name}`;

async function manifestOf(file: string): Promise<BundleManifest> {
  return (await readHeadFile(file)).manifest;
}

/** Config and layer digests of corpus images (manifests excluded). */
function contentOf(images: Corpus['images']): Set<string> {
  return new Set(images.flatMap((i) => i.blobs.map((b) => b.digest)));
}

function create(out: string, ...extra: string[]) {
  return airlock(['--json', 'bundle', 'create', ...refs, '-o', out, '--sign-key', path('signer.key'), '--plain-http', ...extra]);
}

beforeAll(async () => {
  tmp = await makeTempDir('delta');
  const gens = [
    // gen1: web:stable is web:v1
    [
      { name: 'example.com/app/web:v1', layers: [base, layer('web-v1')] },
      { name: 'example.com/app/web:stable', layers: [base, layer('web-v1')] },
      { name: 'example.com/app/db:v1', layers: [base, layer('db-v1')] },
    ],
    // gen2: stable moves to a new build, cache:v1 appears
    [
      { name: 'example.com/app/web:stable', layers: [base, layer('web-v2')] },
      { name: 'example.com/app/cache:v1', layers: [base, layer('cache-v1')] },
    ],
    // gen3: stable moves again
    [{ name: 'example.com/app/web:stable', layers: [base, layer('web-v3')] }],
  ];
  corpora = [];
  for (const [i, images] of gens.entries()) corpora.push(await writeCorpus(path(`corpus${i + 1}`), { images }));
  reg = await startRegistry();
  await seedRegistry(reg, corpora[0]!.dir);
  refs = ['app/web:v1', 'app/web:stable', 'app/db:v1'].map((r) => `${reg.host}/${r}`);
  for (const who of ['signer', 'other']) expect((await airlock(['key', 'generate', '--out', path(who)])).code).toBe(0);
});

afterAll(async () => {
  await reg?.stop();
  await tmp?.remove();
});

describe('delta bundles over three generations', () => {
  const verify = (file: string) => airlock(['bundle', 'verify', file, '--trust', path('signer.pub')]);
  let gen1Id: string;
  let gen2Id: string;

  it('gen1: a full bundle, which expects nothing at the target', async () => {
    const made = await create(path('gen1.tar.zst'));
    expect(made.code, made.stderr).toBe(0);
    gen1Id = (JSON.parse(made.stdout) as { bundleId: string }).bundleId;
    const checked = await airlock(['--json', 'bundle', 'verify', path('gen1.tar.zst'), '--trust', path('signer.pub')]);
    expect(checked.code, checked.stderr).toBe(0);
    expect((JSON.parse(checked.stdout) as { expects: unknown[] }).expects).toEqual([]);
    expect(await manifestOf(path('gen1.tar.zst'))).not.toHaveProperty('parents');
  });

  it('gen2 --since gen1: carries exactly the new configs and layers, every manifest, and verifies', async () => {
    await seedRegistry(reg, corpora[1]!.dir);
    refs.push(`${reg.host}/app/cache:v1`);
    const made = await create(path('gen2.tar.zst'), '--since', path('gen1.tar.zst'));
    expect(made.code, made.stderr).toBe(0);
    const result = JSON.parse(made.stdout) as { bundleId: string; totals: { bytes: number; externalBytes: number }; delta: { parents: Array<{ id: string }> } };
    gen2Id = result.bundleId;
    expect(result.delta.parents.map((p) => p.id)).toEqual([gen1Id]);

    const m1 = await manifestOf(path('gen1.tar.zst'));
    const m2 = await manifestOf(path('gen2.tar.zst'));
    const before = contentOf(corpora[0]!.images);
    const fresh = [...contentOf(corpora[1]!.images)].filter((dg) => !before.has(dg));
    expect(fresh).toHaveLength(4); // two configs, two layers
    const carried = m2.blobs.filter((b) => b.mediaType !== MANIFEST);
    expect(new Set(carried.map((b) => b.digest))).toEqual(new Set(fresh));
    // every image's manifest is carried, the unchanged ones included
    for (const image of m2.images) expect(m2.blobs.some((b) => b.digest === image.digest)).toBe(true);
    const freshBytes = [...corpora[1]!.blobs.values()].filter((b) => fresh.includes(b.digest)).reduce((n, b) => n + b.size, 0);
    const manifestBytes = m2.blobs.filter((b) => b.mediaType === MANIFEST).reduce((n, b) => n + b.size, 0);
    expect(result.totals.bytes).toBe(freshBytes + manifestBytes);
    // everything else it needs, gen1 carries
    expect(m2.external?.every((e) => e.bundle === gen1Id && m1.blobs.some((b) => b.digest === e.digest && b.size === e.size))).toBe(true);
    expect(result.totals.externalBytes).toBeGreaterThan(base.size);

    const checked = await airlock(['--json', 'bundle', 'verify', path('gen2.tar.zst'), '--trust', path('signer.pub')]);
    expect(checked.code, checked.stderr).toBe(0);
    expect((JSON.parse(checked.stdout) as { expects: ExternalBlob[] }).expects).toEqual(m2.external);
    const human = await verify(path('gen2.tar.zst'));
    expect(human.stdout).toMatch(new RegExp(`delta: expects ${m2.external!.length} blobs \\(.+\\) already at the target, from 1 parent`));
    const shown = await airlock(['bundle', 'inspect', path('gen2.tar.zst')]);
    expect(shown.stdout).toContain(`delta of 1 parent: ${gen1Id} (bundle,`);
    expect(shown.stdout).toMatch(/carries \d+ blobs .*; expects \d+ blobs/);
  });

  it('bundle diff gen1 gen2 names the retag and the new image', async () => {
    const r = await airlock(['--json', 'bundle', 'diff', path('gen1.tar.zst'), path('gen2.tar.zst')]);
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout) as DiffResult;
    expect(d.relation).toBe('b-builds-on-a');
    expect(d.added.map((i) => i.name)).toEqual([`${reg.host}/app/cache:v1`]);
    expect(d.retagged.map((i) => i.name)).toEqual([`${reg.host}/app/web:stable`]);
    expect(d.removed).toEqual([]);
    expect(d.unchanged).toBe(2);
    expect(d.newBlobs.every((b) => b.carried)).toBe(true);
    const human = await airlock(['bundle', 'diff', path('gen1.tar.zst'), path('gen2.tar.zst')]);
    expect(human.stdout).toContain('1 added, 0 removed, 1 retagged, 2 unchanged');
    expect(human.stdout).toMatch(/~ +\S+\/app\/web:stable/);
  });

  it('gen3 --since gen1 --since gen2 attributes each external blob to the bundle that carries it; a 1 MiB head copy of gen1 does as well', async () => {
    await seedRegistry(reg, corpora[2]!.dir);
    const made = await create(path('gen3.tar.zst'), '--since', path('gen1.tar.zst'), '--since', path('gen2.tar.zst'));
    expect(made.code, made.stderr).toBe(0);
    const [m1, m2, m3] = await Promise.all(['gen1', 'gen2', 'gen3'].map((g) => manifestOf(path(`${g}.tar.zst`))));
    expect(m3!.parents?.map((p) => p.id)).toEqual([gen1Id, gen2Id]);
    const carries = (m: BundleManifest, digest: string) => m.blobs.some((b) => b.digest === digest);
    for (const e of m3!.external ?? []) expect(carries(e.bundle === gen1Id ? m1! : m2!, e.digest)).toBe(true);
    expect(new Set(m3!.external?.map((e) => e.bundle))).toEqual(new Set([gen1Id, gen2Id]));
    const before = new Set([...contentOf(corpora[0]!.images), ...contentOf(corpora[1]!.images)]);
    const fresh = [...contentOf(corpora[2]!.images)].filter((dg) => !before.has(dg));
    expect(new Set(m3!.blobs.filter((b) => b.mediaType !== MANIFEST).map((b) => b.digest))).toEqual(new Set(fresh));

    // Only the head of gen1 is read: its first MiB (of a larger file) gives the same delta.
    const fh = await open(path('gen1.tar.zst'), 'r');
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(1 << 20);
    await fh.read(head, 0, head.length, 0);
    await fh.close();
    expect(size).toBeGreaterThan(head.length);
    await writeFile(path('gen1.head'), head);
    const again = await create(path('gen3b.tar.zst'), '--since', path('gen1.head'), '--since', path('gen2.tar.zst'));
    expect(again.code, again.stderr).toBe(0);
    const m3b = await manifestOf(path('gen3b.tar.zst'));
    expect({ blobs: m3b.blobs, external: m3b.external, parents: m3b.parents }).toEqual({ blobs: m3!.blobs, external: m3!.external, parents: m3!.parents });

    const checked = await airlock(['--json', 'bundle', 'verify', path('gen3.tar.zst'), '--trust', path('signer.pub')]);
    expect(checked.code, checked.stderr).toBe(0);
    const v = JSON.parse(checked.stdout) as { expects: ExternalBlob[]; parents: unknown[] };
    expect(v.expects).toEqual(m3!.external);
    expect(v.parents).toHaveLength(2);
  });

  it('refuses a parent from another signer and writes nothing', async () => {
    const out = path('refused.tar.zst');
    const r = await airlock(['bundle', 'create', ...refs, '-o', out, '--sign-key', path('other.key'), '--plain-http', '--since', path('gen1.tar.zst')]);
    expect(r.code).toBe(EXIT_CODES.SIGNATURE);
    expect(r.stderr).toMatch(/parent bundle .*gen1\.tar\.zst \(sha256:[0-9a-f]{64}\) was signed by key sha256:[0-9a-f]{64}, this bundle by sha256:/);
    expect(r.stderr).toMatch(/hint: --since only bundles of the same signer/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.partial`)).toBe(false);
  });

  it('an interrupted delta continues into the same bytes', async () => {
    // gen3's inputs (registry content and PREVs) are unchanged: a cut copy of it is a partial run.
    const out = path('gen3r.tar.zst');
    await copyFile(path('gen3.tar.zst'), `${out}.partial`);
    await truncate(`${out}.partial`, Math.floor((await stat(`${out}.partial`)).size * 0.6));
    const r = await create(out, '--since', path('gen1.tar.zst'), '--since', path('gen2.tar.zst'));
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { reusedBlobs: number }).reusedBlobs).toBeGreaterThan(0);
    expect((await readFile(out)).equals(await readFile(path('gen3.tar.zst')))).toBe(true);
  });
});

describe('importing the three generations', () => {
  const importInto = (target: TestRegistry, file: string) =>
    airlock(['--json', 'bundle', 'import', path(file), '--to', target.host, '--plain-http', '--trust', path('signer.pub'), '-q']);
  /** Tag → digest of every image the three generations name, as the target serves them (skopeo). */
  async function served(target: TestRegistry): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const ref of ['app/web:v1', 'app/web:stable', 'app/db:v1', 'app/cache:v1']) {
      const name = `${target.host}/${reg.host.replace(':', '_')}/${ref}`;
      out[ref] = await skopeoInspectRaw(`docker://${name}`, { tlsVerify: false }).then(
        (r) => r.digest,
        () => 'absent',
      );
    }
    return out;
  }

  it('gen3 before gen2 is refused with the missing blobs and gen2 named; in order it equals one full gen3 bundle', async () => {
    const inOrder = await startRegistry();
    const full = await startRegistry();
    try {
      expect((await importInto(inOrder, 'gen1.tar.zst')).code).toBe(0);
      const before = await served(inOrder);
      const early = await importInto(inOrder, 'gen3.tar.zst');
      expect(early.code).toBe(EXIT_CODES.NOT_FOUND);
      const gen2 = await manifestOf(path('gen2.tar.zst'));
      const gen2Id = (await readHeadFile(path('gen2.tar.zst'))).id;
      const error = JSON.parse(early.stdout) as { error: { message: string; hint: string; details: { missing: Array<{ digest: string }> } } };
      expect(error.error.hint).toContain(gen2Id);
      const carriedByGen2 = new Set<string>(gen2.blobs.map((b) => b.digest));
      expect(error.error.details.missing.length).toBeGreaterThan(0);
      for (const m of error.error.details.missing) expect(carriedByGen2.has(m.digest)).toBe(true);
      expect(await served(inOrder)).toEqual(before); // nothing moved

      expect((await importInto(inOrder, 'gen2.tar.zst')).code).toBe(0);
      expect((await importInto(inOrder, 'gen3.tar.zst')).code).toBe(0);
      // One full bundle of gen3, made from the same registry state, into an empty registry.
      const made = await create(path('gen3-full.tar.zst'));
      expect(made.code, made.stderr).toBe(0);
      expect((await importInto(full, 'gen3-full.tar.zst')).code).toBe(0);
      const a = await served(inOrder);
      expect(a).toEqual(await served(full));
      expect(a['app/web:stable']).toBe(corpora[2]!.images[0]!.digest);
    } finally {
      await inOrder.stop();
      await full.stop();
    }
  });
});
