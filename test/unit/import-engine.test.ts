/**
 * The import engine against an in-memory sink that records every call and fails on request:
 * planning, skip / mount / upload, whole-blob retries, a lost final response, ordering (blobs,
 * then manifests children first, then tags), fail-closed signatures, and "nothing tagged".
 */
import { copyFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus, type Corpus } from '../../samples/corpus.mjs';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import { generateKeyPair, loadPublicKey, loadSigningKey, type TrustedKey } from '../../src/bundle/keys.js';
import { readHead } from '../../src/bundle/read-head.js';
import { parseBundleManifest } from '../../src/bundle/manifest.js';
import { expandImages } from '../../src/copy/expand.js';
import type { ProgressEvent } from '../../src/copy/progress.js';
import { sha256Digest } from '../../src/digest/digest.js';
import { AirlockError, isAirlockError } from '../../src/errors.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { Layout } from '../../src/layout/layout.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import type { RawManifest } from '../../src/oci/manifest.js';
import { createBundle } from '../../src/ops/create.js';
import { importBundle } from '../../src/ops/import.js';
import { mapImages, parseImportTarget } from '../../src/ops/import-names.js';
import { DAMAGED_BUNDLE_HINT, planImport, readBundleManifests } from '../../src/ops/import-plan.js';
import { pushBlobs } from '../../src/ops/push-blobs.js';
import { RegistryHttpError } from '../../src/registry/errors.js';
import type { MountingSink } from '../../src/transport/types.js';
import { MemoryStateStore } from '../support/memory-state.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const KiB = 1024;
const BASE = { id: 'base', size: 32 * KiB };
const IMAGES = ['quay.io/a/one:1', 'quay.io/b/two:1', 'quay.io/a/multi:1'];
const TARGET = parseImportTarget('registry.lan/m');
const NO_WAIT = { sleep: async () => undefined };

type Failure = (call: { repository: string; digest: string; attempt: number }) => 'network' | 'lost-response' | 'forbidden' | undefined;

/** A registry in memory: blobs per repository, manifests, tags, and a log of every write. */
class MemorySink implements MountingSink {
  readonly description = 'memory';
  readonly blobs = new Map<string, Set<string>>();
  readonly log: string[] = [];
  readonly attempts = new Map<string, number>();
  constructor(readonly fail: Failure = () => undefined) {}
  #has(repository: string, digest: string): boolean {
    return this.blobs.get(repository)?.has(digest) === true;
  }
  #add(repository: string, digest: string): void {
    if (!this.blobs.has(repository)) this.blobs.set(repository, new Set());
    this.blobs.get(repository)!.add(digest);
  }
  async hasBlob(repository: string, desc: Descriptor): Promise<boolean> {
    return this.#has(repository, desc.digest);
  }
  async mountBlob(repository: string, desc: Descriptor, from: string): Promise<boolean> {
    if (!this.#has(from, desc.digest)) return false;
    this.log.push(`mount ${repository} ${desc.digest}`);
    this.#add(repository, desc.digest);
    return true;
  }
  async putBlob(repository: string, desc: Descriptor, body: Readable): Promise<void> {
    const key = `${repository} ${desc.digest}`;
    const attempt = (this.attempts.get(key) ?? 0) + 1;
    this.attempts.set(key, attempt);
    const failure = this.fail({ repository, digest: desc.digest, attempt });
    if (failure === 'forbidden') throw new RegistryHttpError('AUTH', `denied ${key}`, { status: 403, registryErrors: [] });
    const chunks: Buffer[] = [];
    for await (const chunk of body) {
      chunks.push(chunk as Buffer);
      if (failure === 'network') throw new AirlockError('NETWORK', `connection lost during ${key}`);
    }
    const data = Buffer.concat(chunks);
    // As a registry does on the final PUT (the Sink contract: the sink verifies).
    if (sha256Digest(data) !== desc.digest) {
      throw new RegistryHttpError('INTEGRITY', `memory rejected ${key}: content does not match its digest`, { status: 400, registryErrors: [] });
    }
    this.#add(repository, desc.digest);
    this.log.push(`blob ${key}`);
    if (failure === 'lost-response') throw new AirlockError('NETWORK', `connection lost after ${key}`);
  }
  async putManifest(repository: string, m: RawManifest, tag: string | undefined): Promise<void> {
    this.log.push(tag === undefined ? `manifest ${repository} ${m.digest}` : `tag ${repository}:${tag}`);
  }
}

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
  const endpoints = { registry: () => { throw new Error('no registry'); }, layout: (d: string) => new Layout(d) };
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
  return { reader, plan: planImport(path, manifest, manifests, mapImages(manifest.images, TARGET)) };
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
    const sink = new MemorySink();
    try {
      const transfers = await pushBlobs(p.blobs, { sink, reader, concurrency: 2, progress: () => undefined });
      expect(transfers.filter((t) => t.digest === base()).map((t) => t.action).sort()).toEqual(['mounted', 'mounted', 'uploaded']);
      expect(transfers.filter((t) => t.action === 'uploaded')).toHaveLength(p.blobs.length);
    } finally {
      await reader.close();
    }
  });

  it('skips what is there and mounts from a repository where a check found it', async () => {
    const { reader, plan: p } = await plan();
    const sink = new MemorySink();
    sink.blobs.set('m/quay.io/b/two', new Set([base()]));
    try {
      const transfers = await pushBlobs(p.blobs, { sink, reader, concurrency: 2, progress: () => undefined });
      expect(transfers.filter((t) => t.digest === base()).map((t) => `${t.repository} ${t.action}`).sort()).toEqual([
        'm/quay.io/a/multi mounted',
        'm/quay.io/a/one mounted',
        'm/quay.io/b/two present',
      ]);
    } finally {
      await reader.close();
    }
  });

  it('retries a blob whose connection broke with a fresh stream, and takes the lost bytes back', async () => {
    const { reader, plan: p } = await plan();
    const sink = new MemorySink(({ digest, attempt }) => (digest === base() && attempt < 3 ? 'network' : undefined));
    const events: ProgressEvent[] = [];
    try {
      await pushBlobs(p.blobs, { sink, reader, concurrency: 2, progress: (e) => events.push(e), retry: NO_WAIT });
      expect(sink.attempts.get(`m/quay.io/a/one ${base()}`)).toBe(3);
      const bytes = events.reduce((n, e) => n + (e.kind === 'bytes' ? e.bytes : 0), 0);
      expect(bytes).toBe(p.bytes);
      expect(events.filter((e) => e.kind === 'warning')).toHaveLength(2);
    } finally {
      await reader.close();
    }
  });

  it('counts a blob whose final response was lost as landed (HEAD before retrying)', async () => {
    const { reader, plan: p } = await plan();
    const sink = new MemorySink(({ digest }) => (digest === base() ? 'lost-response' : undefined));
    try {
      await pushBlobs(p.blobs, { sink, reader, concurrency: 1, progress: () => undefined, retry: NO_WAIT });
      expect(sink.attempts.get(`m/quay.io/a/one ${base()}`)).toBe(1);
    } finally {
      await reader.close();
    }
  });

  it('does not retry a refusal, and gives up after the last attempt', async () => {
    const { reader, plan: p } = await plan();
    try {
      const forbidden = new MemorySink(() => 'forbidden');
      const err = await pushBlobs(p.blobs, { sink: forbidden, reader, concurrency: 2, progress: () => undefined, retry: NO_WAIT }).catch((e: unknown) => e);
      expect(isAirlockError(err, 'AUTH')).toBe(true);
      expect([...forbidden.attempts.values()].every((n) => n === 1)).toBe(true);
      const broken = new MemorySink(({ digest }) => (digest === base() ? 'network' : undefined));
      const err2 = await pushBlobs(p.blobs, { sink: broken, reader, concurrency: 2, progress: () => undefined, retry: { ...NO_WAIT, attempts: 3 } }).catch((e: unknown) => e);
      expect(isAirlockError(err2, 'NETWORK')).toBe(true);
      expect(broken.attempts.get(`m/quay.io/a/one ${base()}`)).toBe(3);
    } finally {
      await reader.close();
    }
  });
});

describe('importBundle', () => {
  it('pushes blobs, then manifests (children first), then tags', async () => {
    const sink = new MemorySink();
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
    const sink = new MemorySink();
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
    const sink = new MemorySink();
    const err = await importBundle({ path: tampered, target: TARGET, sink, state: new MemoryStateStore(), trusted }).catch((e: unknown) => e);
    expect(isAirlockError(err, 'INTEGRITY'), String(err)).toBe(true);
    expect((err as Error).message).toContain(layer.digest);
    expect((err as AirlockError).hint).toBe(DAMAGED_BUNDLE_HINT);
    expect(sink.log.filter((l) => !l.startsWith('blob') && !l.startsWith('mount'))).toEqual([]);
    expect([...(sink.blobs.get('m/quay.io/b/two') ?? [])]).not.toContain(layer.digest);
  });

  it('is fail-closed on signatures', async () => {
    const sink = new MemorySink();
    const untrusted = await importBundle({ path: bundle, target: TARGET, sink, state: new MemoryStateStore(), trusted: [] }).catch((e: unknown) => e);
    expect(isAirlockError(untrusted, 'SIGNATURE')).toBe(true);
    expect(sink.log).toEqual([]);
    const allowed = await importBundle({ path: bundle, target: TARGET, sink, state: new MemoryStateStore(), trusted: [], allowUnsigned: true });
    expect(allowed.keyId).toBeUndefined();
  });
});
