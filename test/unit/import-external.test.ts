/**
 * Importing delta bundles, against an in-memory registry with a catalog: a delta whose parent was
 * never imported is refused naming every missing blob and the bundle to import first, with nothing
 * written; after its parent it ends in the state a full bundle gives, mounting a blob from a
 * repository it does not touch (found through the catalog); a stale inventory is named as such;
 * the catalog search is bounded; a layout counts a blob file only at its size.
 */
import { existsSync } from 'node:fs';
import { truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus, type Corpus } from '../../samples/corpus.mjs';
import { generateKeyPair, loadPublicKey, loadSigningKey, type SigningKey, type TrustedKey } from '../../src/bundle/keys.js';
import { expandImages } from '../../src/copy/expand.js';
import { sha256Digest } from '../../src/digest/digest.js';
import { AirlockError, isAirlockError } from '../../src/errors.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { Layout } from '../../src/layout/layout.js';
import { blobFile } from '../../src/layout/paths.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { createBundle } from '../../src/ops/create.js';
import { importBundle } from '../../src/ops/import.js';
import { parseImportTarget } from '../../src/names/import-names.js';
import { RegistryBlobSearch } from '../../src/registry/blob-search.js';
import { MemoryRegistry } from '../support/memory-registry.js';
import { bundleParent, writeDelta } from '../support/delta.js';
import { MemoryStateStore } from '../support/memory-state.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

/** Each in-memory registry keeps its import record beside it, as a real one keeps it inside. */
const records = new WeakMap<object, MemoryStateStore>();
function stateFor(sink: object): MemoryStateStore {
  let store = records.get(sink);
  if (store === undefined) records.set(sink, (store = new MemoryStateStore()));
  return store;
}

const KiB = 1024;
const BASE = { id: 'x-base', size: 24 * KiB };
const GONE = { id: 'x-gone', size: 12 * KiB };
const GEN1 = ['quay.io/a/one:1', 'quay.io/old/gone:1', 'quay.io/a/multi:1'];
const GEN2 = ['quay.io/a/one:1', 'quay.io/a/one:2', 'quay.io/new/app:1', 'quay.io/a/multi:1'];
const TARGET = parseImportTarget('registry.lan/m');

/** Blobs, manifests and tags of the repositories of `images` (host kept, under prefix m). */
function state(registry: MemoryRegistry, images: string[]): ReturnType<MemoryRegistry['snapshot']> {
  return registry.snapshot([...new Set(images.map((n) => `m/${n.slice(0, n.lastIndexOf(':'))}`))].sort());
}

let work: TempDir;
let corpus: Corpus;
let key: SigningKey;
let trusted: TrustedKey[];
let full1: string;
let full2: string;
let delta: string;
let parent1: Awaited<ReturnType<typeof bundleParent>>;
let externals: Array<{ digest: string; size: number }>;

async function bundle(names: string[], output: string): Promise<void> {
  const endpoints = {
    registry: () => {
      throw new Error('no registry');
    },
    layout: (d: string) => new Layout(d),
  };
  const images = await expandImages(imageListFromRefs(names.map((n) => `oci:${corpus.dir}:${n}`)).entries, endpoints);
  await createBundle({ images, output, signingKey: key });
}

const layer = (name: string, index: number): string => corpus.images.find((i) => i.name === name)!.blobs[index]!.digest;

beforeAll(async () => {
  work = await makeTempDir('import-external');
  const pair = await generateKeyPair(join(work.path, 'k'));
  key = await loadSigningKey(pair.privateKeyFile);
  trusted = [await loadPublicKey(pair.publicKeyFile)];
  corpus = await writeCorpus(join(work.path, 'corpus'), {
    images: [
      { name: 'quay.io/a/one:1', layers: [BASE, { id: 'x-one1', size: 16 * KiB }] },
      { name: 'quay.io/old/gone:1', layers: [GONE] },
      { name: 'quay.io/a/one:2', layers: [BASE, { id: 'x-one1', size: 16 * KiB }, { id: 'x-one2', size: 16 * KiB }] },
      { name: 'quay.io/new/app:1', layers: [GONE, { id: 'x-app', size: 16 * KiB }] },
      {
        name: 'quay.io/a/multi:1',
        platforms: [
          { platform: { os: 'linux', architecture: 'amd64' }, layers: [BASE] },
          { platform: { os: 'linux', architecture: 'arm64' }, layers: [{ id: 'x-arm', size: 8 * KiB }] },
        ],
      },
    ],
  });
  full1 = join(work.path, 'gen1.tar.zst');
  full2 = join(work.path, 'gen2.tar.zst');
  delta = join(work.path, 'gen2-delta.tar.zst');
  await bundle(GEN1, full1);
  await bundle(GEN2, full2);
  parent1 = await bundleParent(full1);
  externals = (await writeDelta(full2, delta, [parent1], key)).manifest.external ?? [];
});
afterAll(async () => {
  await work?.remove();
});

describe('importing a delta bundle', () => {
  it('refuses a delta whose parent was never imported: every missing blob, the bundle to import first, nothing written', async () => {
    expect(externals.map((e) => e.digest)).toContain(layer('quay.io/new/app:1', 1)); // GONE (blobs[0] is the config)
    const sink = new MemoryRegistry();
    const err = await importBundle({ path: delta, target: TARGET, sink, state: stateFor(sink), trusted }).catch((e: unknown) => e);
    expect(isAirlockError(err, 'NOT_FOUND'), String(err)).toBe(true);
    const e = err as AirlockError;
    expect(e.message).toContain(`${delta} is a delta bundle; registry.lan/m lacks ${externals.length} blobs it does not carry`);
    const problems = e.details!.problems as Array<{ message: string }>;
    expect(problems).toHaveLength(externals.length);
    for (const x of externals) {
      expect(problems.map((p) => p.message)).toContainEqual(expect.stringContaining(`blob ${x.digest} (${x.size} bytes, needed by quay.io/`));
    }
    expect(problems[0]!.message).toMatch(
      new RegExp(`^blob sha256:[0-9a-f]{64} \\(\\d+ bytes, needed by quay\\.io/[^)]+\\) is carried by bundle ${parent1.parent.id}, not imported here$`),
    );
    expect(e.hint).toBe(
      `import bundle ${parent1.parent.id} (created ${parent1.parent.created}, signed by key ${trusted[0]!.keyId}) into registry.lan/m first, then this one again. Nothing was written`,
    );
    expect(sink.log).toEqual([]);
  });

  it('after its parent, ends exactly as the full bundle does, mounting a blob from a repository it does not touch', async () => {
    const chain = new MemoryRegistry();
    await importBundle({ path: full1, target: TARGET, sink: chain, state: stateFor(chain), trusted });
    const result = await importBundle({ path: delta, target: TARGET, sink: chain, state: stateFor(chain), trusted });
    const gone = layer('quay.io/new/app:1', 1);
    expect(chain.log).toContain(`mount m/quay.io/new/app ${gone} from m/quay.io/old/gone`);
    const uploaded = new Set(result.transfers.filter((t) => t.action === 'uploaded').map((t) => t.digest));
    for (const x of externals) expect(uploaded.has(x.digest)).toBe(false);

    const whole = new MemoryRegistry();
    await importBundle({ path: full2, target: TARGET, sink: whole, state: stateFor(whole), trusted });
    expect(state(chain, GEN2)).toEqual(state(whole, GEN2));
  });

  it('without a catalog, names the blob it could not find beyond the mapped repositories, and says why', async () => {
    const sink = new MemoryRegistry({ catalog: 'refused' });
    await importBundle({ path: full1, target: TARGET, sink, state: stateFor(sink), trusted });
    const before = sink.log.length;
    const err = (await importBundle({ path: delta, target: TARGET, sink, state: stateFor(sink), trusted }).catch((e: unknown) => e)) as AirlockError;
    expect(err.code).toBe('NOT_FOUND');
    expect((err.details!.missing as Array<{ digest: string }>).map((m) => m.digest)).toEqual([layer('quay.io/new/app:1', 1)]);
    expect(err.hint).toContain('the catalog could not be searched (registry memory denied access to the repository catalog (401))');
    expect(sink.log.length).toBe(before);
  });

  it('names a stale inventory as such, with the command that makes a new one', async () => {
    const inventory = { id: sha256Digest('an inventory payload'), created: '2026-11-28T00:00:00Z', kind: 'inventory' as const };
    const stale = join(work.path, 'from-inventory.tar.zst');
    await writeDelta(full2, stale, [{ parent: inventory, digests: parent1.digests }], key);
    const err = (await importBundle({ path: stale, target: TARGET, sink: new MemoryRegistry(), state: new MemoryStateStore(), trusted }).catch(
      (e: unknown) => e,
    )) as AirlockError;
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toContain(`the inventory ${inventory.id} is stale: the target no longer holds blob `);
    expect(err.hint).toBe(
      `the target changed since inventory ${inventory.id} was made (2026-11-28T00:00:00Z): make a new one (airlock inventory --registry registry.lan/m > have.json), create the delta again with --since have.json, or import a full bundle. Nothing was written`,
    );
  });
});

describe('RegistryBlobSearch', () => {
  const desc = (n: string): Descriptor => ({ mediaType: 'application/octet-stream', digest: sha256Digest(n), size: 1 });

  it('stops after its probe budget and says so; tries a repository that already had a hit first', async () => {
    const sink = new MemoryRegistry();
    for (let i = 0; i < 30; i++) sink.blobs.set(`m/r${String(i).padStart(2, '0')}`, new Set());
    sink.blobs.get('m/r29')!.add(desc('a').digest).add(desc('b').digest);
    const search = new RegistryBlobSearch(sink, sink, { prefix: 'm', known: ['m/r00'], maxProbes: 10 });
    expect(await search.locate(desc('x'), ['m/r00'], 'm/r00')).toBeUndefined();
    expect(search.report).toMatchObject({ probes: 10, exhausted: true, catalog: 29 });

    const wide = new RegistryBlobSearch(sink, sink, { prefix: 'm', known: [] });
    expect(await wide.locate(desc('a'), [], 'm/r00')).toBe('m/r29');
    const after = wide.report.probes;
    expect(await wide.locate(desc('b'), [], 'm/r00')).toBe('m/r29');
    expect(wide.report.probes).toBe(after + 1);
    expect(sink.catalogCalls).toBe(2); // once per search
  });
});

describe('importing a delta into an OCI layout', () => {
  it('is refused without creating the directory, and counts a blob file only at its size', async () => {
    const dir = join(work.path, 'layout-missing');
    const err = await importBundle({ path: delta, target: { kind: 'layout', dir }, sink: new Layout(dir), trusted }).catch((e: unknown) => e);
    expect(isAirlockError(err, 'NOT_FOUND'), String(err)).toBe(true);
    expect((err as AirlockError).hint).toContain(`into oci:${dir} first`);
    expect(existsSync(dir)).toBe(false);

    const cut = join(work.path, 'layout-cut');
    await importBundle({ path: full1, target: { kind: 'layout', dir: cut }, sink: new Layout(cut), trusted });
    const victim = externals[externals.length - 1]!;
    await truncate(blobFile(cut, victim.digest as never), victim.size - 1);
    const err2 = (await importBundle({ path: delta, target: { kind: 'layout', dir: cut }, sink: new Layout(cut), trusted }).catch(
      (e: unknown) => e,
    )) as AirlockError;
    expect(err2.code).toBe('NOT_FOUND');
    expect((err2.details!.missing as Array<{ digest: string }>).map((m) => m.digest)).toEqual([victim.digest]);
  });
});
