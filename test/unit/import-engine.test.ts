/**
 * The import engine against an in-memory sink that records every call and fails on request:
 * planning, skip / mount / upload, whole-blob retries, a lost final response, ordering (blobs,
 * then manifests children first, then tags), fail-closed signatures, and "nothing tagged".
 */
import { copyFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus, type Corpus } from '../../samples/corpus.mjs';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import { generateKeyPair, loadPublicKey, loadSigningKey, type TrustedKey } from '../../src/bundle/keys.js';
import { readHead } from '../../src/bundle/read-head.js';
import { parseBundleManifest } from '../../src/bundle/manifest.js';
import { expandImages } from '../../src/copy/expand.js';
import type { ProgressEvent } from '../../src/copy/progress.js';
import { AirlockError, isAirlockError } from '../../src/errors.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { Layout } from '../../src/layout/layout.js';
import { createBundle } from '../../src/ops/create.js';
import { importBundle } from '../../src/ops/import.js';
import { mapImages, parseImportTarget } from '../../src/names/import-names.js';
import { DAMAGED_BUNDLE_HINT, planImport, readBundleManifests } from '../../src/copy/import-plan.js';
import { ArchiveSource } from '../../src/bundle/archive-source.js';
import { absentBlobs, checkBlobs, transferBlobs, type BlobRetry, type BlobTransfer, type BlobUnit } from '../../src/copy/transfer.js';
import type { ProgressListener } from '../../src/copy/progress.js';
import { MemoryRegistry } from '../support/memory-registry.js';
import { MemoryStateStore } from '../support/memory-state.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const KiB = 1024;
const BASE = { id: 'base', size: 32 * KiB };
const IMAGES = ['quay.io/a/one:1', 'quay.io/b/two:1', 'quay.io/a/multi:1'];
const TARGET = parseImportTarget('registry.lan/m');
const NO_WAIT = { sleep: async () => undefined };

let work: TempDir;
let corpus: Corpus;
let bundle: string;
let trusted: TrustedKey[];

beforeAll(async () => {
  work = await makeTempDir('import-engine');
  const key = await generateKeyPair(join(work.path, 'k'));
  trusted = [await loadPublicKey(key.publicKeyFile)];
  corpus = await writeCorpus(join(work.path, 'corpus'), {
    images: [
      { name: IMAGES[0]!, layers: [BASE, { id: 'one', size: 20 * KiB }] },
      { name: IMAGES[1]!, layers: [BASE, { id: 'two', size: 20 * KiB }] },
      {
        name: IMAGES[2]!,
        platforms: [
          { platform: { os: 'linux', architecture: 'amd64' }, layers: [BASE] },
          { platform: { os: 'linux', architecture: 'arm64' }, layers: [{ id: 'arm', size: 8 * KiB }] },
        ],
      },
    ],
  });
  const endpoints = {
    registry: () => {
      throw new Error('no registry');
    },
    layout: (d: string) => new Layout(d),
  };
  const images = await expandImages(imageListFromRefs(IMAGES.map((n) => `oci:${corpus.dir}:${n}`)).entries, endpoints);
  bundle = join(work.path, 'b.tar.zst');
  await createBundle({ images, output: bundle, signingKey: await loadSigningKey(key.privateKeyFile) });
});
afterAll(async () => {
  await work?.remove();
});

async function plan(path = bundle) {
  const manifest = parseBundleManifest((await readHead(path)).bundleJson, path);
  const reader = await ArchiveReader.open(path);
  const manifests = await readBundleManifests(reader, manifest);
  const source = new ArchiveSource(reader, manifest, manifests);
  return { reader, source, plan: planImport(source, manifest, manifests, mapImages(manifest.images, TARGET)) };
}

/** The blob phases of the engine on their own: check, then (nothing absent) transfer. */
async function pushBlobs(
  units: readonly BlobUnit[],
  opts: { sink: MemoryRegistry; concurrency: number; progress: ProgressListener; retry?: Partial<BlobRetry> },
): Promise<BlobTransfer[]> {
  const checked = await checkBlobs(units, opts);
  expect(absentBlobs(checked)).toEqual([]);
  return transferBlobs(checked, { ...opts, integrity: { digest: 'signed digest', hint: DAMAGED_BUNDLE_HINT } });
}

const base = (): string => corpus.images[0]!.blobs[1]!.digest;

describe('planImport', () => {
  it('lists each blob once with every repository that needs it, children before indexes', async () => {
    const { reader, plan: p } = await plan();
    await reader.close();
    const shared = p.blobs.find((u) => u.desc.digest === base())!;
    expect(shared.repositories).toEqual(['m/quay.io/a/one', 'm/quay.io/b/two', 'm/quay.io/a/multi']);
    const multi = p.repositories.find((r) => r.repository === 'm/quay.io/a/multi')!;
    expect(multi.manifests.map((m) => m.kind)).toEqual(['manifest', 'manifest', 'index']);
    expect(multi.tags.map((t) => t.tag)).toEqual(['1']);
    expect(p.bytes).toBe(p.blobs.reduce((n, u) => n + u.desc.size, 0));
  });
});

describe('pushBlobs', () => {
  it('uploads each blob once and mounts it into the other repositories', async () => {
    const { reader, plan: p } = await plan();
    const sink = new MemoryRegistry();
    try {
      const transfers = await pushBlobs(p.blobs, { sink, concurrency: 2, progress: () => undefined });
      expect(
        transfers
          .filter((t) => t.digest === base())
          .map((t) => t.action)
          .sort(),
      ).toEqual(['mounted', 'mounted', 'uploaded']);
      expect(transfers.filter((t) => t.action === 'uploaded')).toHaveLength(p.blobs.length);
    } finally {
      await reader.close();
    }
  });

  it('skips what is there and mounts from a repository where a check found it', async () => {
    const { reader, plan: p } = await plan();
    const sink = new MemoryRegistry();
    sink.blobs.set('m/quay.io/b/two', new Set([base()]));
    try {
      const transfers = await pushBlobs(p.blobs, { sink, concurrency: 2, progress: () => undefined });
      expect(
        transfers
          .filter((t) => t.digest === base())
          .map((t) => `${t.repository} ${t.action}`)
          .sort(),
      ).toEqual(['m/quay.io/a/multi mounted', 'm/quay.io/a/one mounted', 'm/quay.io/b/two present']);
    } finally {
      await reader.close();
    }
  });

  it('retries a blob whose connection broke with a fresh stream, and takes the lost bytes back', async () => {
    const { reader, plan: p } = await plan();
    const sink = new MemoryRegistry({ fail: ({ digest, attempt }) => (digest === base() && attempt < 3 ? 'network' : undefined) });
    const events: ProgressEvent[] = [];
    try {
      await pushBlobs(p.blobs, { sink, concurrency: 2, progress: (e) => events.push(e), retry: NO_WAIT });
      expect(sink.attempts.get(`m/quay.io/a/one ${base()}`)).toBe(3);
      const bytes = events.reduce((n, e) => n + (e.kind === 'bytes' ? e.bytes : 0), 0);
      expect(bytes).toBe(p.bytes);
      expect(events.filter((e) => e.kind === 'retry').map((e) => (e as { attempt: number; attempts: number }).attempt)).toEqual([2, 3]);
    } finally {
      await reader.close();
    }
  });

  it('counts a blob whose final response was lost as landed (HEAD before retrying)', async () => {
    const { reader, plan: p } = await plan();
    const sink = new MemoryRegistry({ fail: ({ digest }) => (digest === base() ? 'lost-response' : undefined) });
    try {
      await pushBlobs(p.blobs, { sink, concurrency: 1, progress: () => undefined, retry: NO_WAIT });
      expect(sink.attempts.get(`m/quay.io/a/one ${base()}`)).toBe(1);
    } finally {
      await reader.close();
    }
  });

  it('does not retry a refusal, and gives up after the last attempt', async () => {
    const { reader, plan: p } = await plan();
    try {
      const forbidden = new MemoryRegistry({ fail: () => 'forbidden' });
      const err = await pushBlobs(p.blobs, { sink: forbidden, concurrency: 2, progress: () => undefined, retry: NO_WAIT }).catch((e: unknown) => e);
      expect(isAirlockError(err, 'AUTH')).toBe(true);
      expect([...forbidden.attempts.values()].every((n) => n === 1)).toBe(true);
      const broken = new MemoryRegistry({ fail: ({ digest }) => (digest === base() ? 'network' : undefined) });
      const err2 = await pushBlobs(p.blobs, { sink: broken, concurrency: 2, progress: () => undefined, retry: { ...NO_WAIT, attempts: 3 } }).catch(
        (e: unknown) => e,
      );
      expect(isAirlockError(err2, 'NETWORK')).toBe(true);
      expect(broken.attempts.get(`m/quay.io/a/one ${base()}`)).toBe(3);
    } finally {
      await reader.close();
    }
  });
});

describe('importBundle', () => {
  it('pushes blobs, then manifests (children first), then tags', async () => {
    const sink = new MemoryRegistry();
    const result = await importBundle({ path: bundle, target: TARGET, sink, state: new MemoryStateStore(), trusted });
    const kinds = sink.log.map((l) => l.split(' ')[0]);
    const lastBlob = kinds.lastIndexOf('blob');
    const firstManifest = kinds.indexOf('manifest');
    const firstTag = kinds.indexOf('tag');
    expect(lastBlob).toBeLessThan(firstManifest);
    expect(kinds.lastIndexOf('manifest')).toBeLessThan(firstTag);
    expect(sink.log.filter((l) => l.startsWith('tag'))).toEqual(IMAGES.map((n) => `tag m/${n}`));
    expect(result.images.map((i) => i.reference)).toEqual(IMAGES.map((n) => `registry.lan/m/${n}`));
    const again = await importBundle({ path: bundle, target: TARGET, sink, state: new MemoryStateStore(), trusted });
    expect(again.blobs.uploaded + again.blobs.mounted).toBe(0);
  });

  it('writes the import record after the manifests and before the first tag', async () => {
    const sink = new MemoryRegistry();
    const state = new MemoryStateStore();
    const write = state.write.bind(state);
    state.write = async (s) => {
      sink.log.push('record');
      await write(s);
    };
    await importBundle({ path: bundle, target: TARGET, sink, state, trusted });
    const kinds = sink.log.map((l) => l.split(' ')[0]);
    expect(kinds.indexOf('record')).toBeGreaterThan(kinds.lastIndexOf('manifest'));
    expect(kinds.indexOf('record')).toBeLessThan(kinds.indexOf('tag'));
    expect(Object.keys(state.state.tags).sort()).toEqual(IMAGES.map((n) => `m/${n}`).sort());
  });

  it('tags nothing when a layer in the archive was altered', async () => {
    const tampered = join(work.path, 'tampered.tar.zst');
    await copyFile(bundle, tampered);
    const layer = corpus.images[1]!.blobs[2]!; // quay.io/b/two's own layer
    const reader = await ArchiveReader.open(tampered);
    const entry = reader.entry(`blobs/sha256/${layer.digest.slice(7)}`)!;
    await reader.close();
    const fh = await open(tampered, 'r+');
    await fh.write(Buffer.from('XXXX'), 0, 4, entry.offset + 2048);
    await fh.close();
    const sink = new MemoryRegistry();
    const err = await importBundle({ path: tampered, target: TARGET, sink, state: new MemoryStateStore(), trusted }).catch((e: unknown) => e);
    expect(isAirlockError(err, 'INTEGRITY'), String(err)).toBe(true);
    expect((err as Error).message).toContain(layer.digest);
    expect((err as AirlockError).hint).toBe(DAMAGED_BUNDLE_HINT);
    expect(sink.log.filter((l) => !l.startsWith('blob') && !l.startsWith('mount'))).toEqual([]);
    expect([...(sink.blobs.get('m/quay.io/b/two') ?? [])]).not.toContain(layer.digest);
  });

  it('is fail-closed on signatures', async () => {
    const sink = new MemoryRegistry();
    const untrusted = await importBundle({ path: bundle, target: TARGET, sink, state: new MemoryStateStore(), trusted: [] }).catch((e: unknown) => e);
    expect(isAirlockError(untrusted, 'SIGNATURE')).toBe(true);
    expect(sink.log).toEqual([]);
    const allowed = await importBundle({ path: bundle, target: TARGET, sink, state: new MemoryStateStore(), trusted: [], allowUnsigned: true });
    expect(allowed.keyId).toBeUndefined();
  });
});
