/**
 * What each walk of the manifest graph does at its edges, through the callers of src/oci/walk.ts:
 * resolution and import planning refuse indexes nested too deep (each with its own message),
 * planning checks every listing of a child (repeats included) and pushes a manifest shared by two
 * images of one repository once; the inventory warns about a deep index and a missing child and
 * lists what it can.
 */
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { sha256Digest, type Digest } from '../../src/digest/digest.js';
import { AirlockError } from '../../src/errors.js';
import type { BundleManifest } from '../../src/bundle/manifest.js';
import { resolveImage } from '../../src/copy/resolve.js';
import type { ProgressEvent } from '../../src/copy/progress.js';
import { Layout } from '../../src/layout/layout.js';
import { blobFile } from '../../src/layout/paths.js';
import type { Descriptor, Platform } from '../../src/oci/descriptor.js';
import { parseManifest, type RawManifest } from '../../src/oci/manifest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { MAX_INDEX_DEPTH } from '../../src/oci/walk.js';
import { DAMAGED_BUNDLE_HINT, planImport } from '../../src/copy/import-plan.js';
import type { ImageMapping } from '../../src/names/import-names.js';
import { makeInventory } from '../../src/ops/inventory.js';
import type { Source } from '../../src/transport/types.js';
import { failure } from '../support/failure.js';

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };
/** The archive a plan reads from: planning only names it (its description) and records it. */
const ARCHIVE = { description: 'b.tar.zst' } as Source;

/** Manifests and blobs by digest; serves them as a Source would. */
class Store implements Source {
  readonly description = 'registry walk.test';
  readonly manifests = new Map<string, RawManifest>();
  readonly blobs = new Map<Digest, { desc: Descriptor; bytes: Buffer }>();

  blob(text: string, mediaType: string = MediaType.OciLayerGzip): Descriptor {
    const bytes = Buffer.from(text);
    const desc = { mediaType, digest: sha256Digest(bytes), size: bytes.length };
    this.blobs.set(desc.digest, { desc, bytes });
    return desc;
  }

  image(name: string): RawManifest {
    const config = this.blob(JSON.stringify({ ...AMD64, name }), MediaType.OciConfig);
    return this.put({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [this.blob(`layer of ${name}`)] });
  }

  index(children: Descriptor[], tag?: string): RawManifest {
    return this.put({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: children }, tag);
  }

  /** `levels` indexes, each listing the next, over one image: the top first, the image last. */
  chain(levels: number, tag?: string): RawManifest[] {
    const chain = [this.image(`leaf of ${levels}`)];
    for (let i = levels - 1; i >= 0; i--) chain.unshift(this.index([desc(chain[0]!, AMD64)], i === 0 ? tag : undefined));
    return chain;
  }

  put(doc: object, tag?: string): RawManifest {
    const m = parseManifest(Buffer.from(JSON.stringify(doc)), undefined, 'walk.test');
    this.manifests.set(m.digest, m);
    if (tag !== undefined) this.manifests.set(tag, m);
    return m;
  }

  async getManifest(_repository: string, reference: string): Promise<RawManifest> {
    const m = this.manifests.get(reference);
    if (m === undefined) throw new AirlockError('NOT_FOUND', `no manifest ${reference}`);
    return m;
  }

  async openBlob(_repository: string, d: Descriptor): Promise<Readable> {
    const b = this.blobs.get(d.digest);
    if (b === undefined) throw new AirlockError('NOT_FOUND', `no blob ${d.digest}`);
    return Readable.from([b.bytes]);
  }

  async listTags(): Promise<string[]> {
    return [];
  }

  /** A bundle manifest carrying every manifest and blob of the store, naming `images`. */
  bundle(images: Array<{ name: string; top: RawManifest }>): BundleManifest {
    const manifests = [...new Map([...this.manifests.values()].map((m) => [m.digest, m])).values()];
    return {
      blobs: [...[...this.blobs.values()].map((b) => b.desc), ...manifests.map((m) => desc(m))],
      images: images.map(({ name, top }) => ({ name, source: name, digest: top.digest, mediaType: top.mediaType, size: top.bytes.length, platforms: [] })),
    } as unknown as BundleManifest;
  }

  byDigest(): Map<Digest, RawManifest> {
    return new Map([...this.manifests.values()].map((m) => [m.digest, m]));
  }
}

const desc = (m: RawManifest, platform?: Platform): Descriptor => ({
  mediaType: m.mediaType,
  digest: m.digest,
  size: m.bytes.length,
  ...(platform === undefined ? {} : { platform }),
});

const mapping = (name: string, repository: string, tag: string, top: RawManifest): ImageMapping => ({
  name,
  registry: 'walk.test',
  upstreamRepository: `walk.test/${repository}`,
  repository,
  tag,
  digest: top.digest,
  reference: `registry.lan/${repository}:${tag}`,
});

describe('resolution', () => {
  it(`resolves indexes nested ${MAX_INDEX_DEPTH} deep and refuses one more level, naming the image`, async () => {
    const store = new Store();
    store.chain(MAX_INDEX_DEPTH, 'ok');
    store.chain(MAX_INDEX_DEPTH + 1, 'deep');
    const image = (tag: string) => ({ name: `walk.test/app:${tag}`, sourceRef: `walk.test/app:${tag}`, source: store, repository: 'app', reference: tag });
    const ok = await resolveImage(image('ok'));
    expect(ok.manifests.map((m) => m.kind)).toEqual(['manifest', 'index', 'index', 'index', 'index']);
    expect(ok.platforms).toEqual(['linux/amd64']);
    const err = await failure(resolveImage(image('deep')));
    expect(err.code).toBe('UNSUPPORTED');
    expect(err.message).toBe(`walk.test/app:deep: indexes nested more than ${MAX_INDEX_DEPTH} deep`);
    expect(err.subject).toBe('walk.test/app:deep');
  });

  it('refuses a child the source serves other than its descriptor says', async () => {
    const store = new Store();
    const child = store.image('child');
    store.index([{ ...desc(child, AMD64), size: child.bytes.length + 1 }], 'lying');
    const err = await failure(
      resolveImage({ name: 'walk.test/app:lying', sourceRef: 'walk.test/app:lying', source: store, repository: 'app', reference: 'lying' }),
    );
    expect(err.code).toBe('INTEGRITY');
    expect(err.message).toBe(`walk.test/app:lying (child ${child.digest}): manifest does not match the index descriptor`);
  });
});

describe('import planning', () => {
  it(`plans indexes nested ${MAX_INDEX_DEPTH} deep, children first, and refuses one more level`, () => {
    const store = new Store();
    const [ok] = store.chain(MAX_INDEX_DEPTH) as [RawManifest];
    const [deep] = store.chain(MAX_INDEX_DEPTH + 1) as [RawManifest];
    const images = [
      { name: 'walk.test/ok:1', top: ok },
      { name: 'walk.test/deep:1', top: deep },
    ];
    const bundle = store.bundle(images);
    const plan = planImport(ARCHIVE, bundle, store.byDigest(), [mapping('walk.test/ok:1', 'm/ok', '1', ok)]);
    expect(plan.repositories[0]!.manifests.map((m) => m.kind)).toEqual(['manifest', 'index', 'index', 'index', 'index']);
    const err = (() => {
      try {
        planImport(ARCHIVE, bundle, store.byDigest(), [mapping('walk.test/deep:1', 'm/deep', '1', deep)]);
      } catch (e) {
        return e as AirlockError;
      }
      throw new Error('expected a refusal');
    })();
    expect(err.code).toBe('UNSUPPORTED');
    expect(err.message).toBe(`walk.test/deep:1: indexes nested more than ${MAX_INDEX_DEPTH} deep`);
  });

  it('pushes a manifest two images of one repository share once, and checks every listing of a child', () => {
    const store = new Store();
    const shared = store.image('shared');
    const one = store.index([desc(shared, AMD64)]);
    const own = store.image('own');
    const two = store.index([desc(shared, AMD64), desc(own, AMD64)]);
    const bundle = store.bundle([
      { name: 'walk.test/app:1', top: one },
      { name: 'walk.test/app:2', top: two },
    ]);
    const plan = planImport(ARCHIVE, bundle, store.byDigest(), [mapping('walk.test/app:1', 'm/app', '1', one), mapping('walk.test/app:2', 'm/app', '2', two)]);
    const repo = plan.repositories[0]!;
    expect(repo.manifests.map((m) => m.digest)).toEqual([shared.digest, one.digest, own.digest, two.digest]);
    expect(repo.tags.map((t) => t.tag)).toEqual(['1', '2']);

    // The second listing of a child gives it another size: damage, although the child was walked.
    const twice = store.index([desc(shared, AMD64), { ...desc(shared, AMD64), size: shared.bytes.length - 1 }]);
    const damaged = store.bundle([{ name: 'walk.test/app:3', top: twice }]);
    let err: AirlockError | undefined;
    try {
      planImport(ARCHIVE, damaged, store.byDigest(), [mapping('walk.test/app:3', 'm/app', '3', twice)]);
    } catch (e) {
      err = e as AirlockError;
    }
    expect(err?.code).toBe('INTEGRITY');
    expect(err?.message).toBe(`b.tar.zst: image walk.test/app:3: manifest ${shared.digest} is not ${shared.bytes.length - 1} bytes`);
    expect(err?.hint).toBe(DAMAGED_BUNDLE_HINT);
  });
});

describe('inventory of a layout', () => {
  it('lists what it can: a deep index without its children, a missing child left out, each with a warning', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-walk-'));
    try {
      const store = new Store();
      const layout = new Layout(dir);
      await layout.init();
      const chain = store.chain(MAX_INDEX_DEPTH + 1);
      const deep = chain[0]!;
      const gone = store.image('gone');
      const kept = store.image('kept');
      const partial = store.index([desc(gone, AMD64), desc(kept, AMD64)]);
      for (const b of store.blobs.values()) await layout.putBlob('', b.desc, Readable.from([b.bytes]));
      for (const m of store.byDigest().values()) await layout.putManifest('', m, undefined);
      await layout.putTags([
        { repository: 'walk.test/deep', manifest: deep, reference: '1' },
        { repository: 'walk.test/partial', manifest: partial, reference: '1' },
        // Named and also a child of partial: read as a top and again as a child.
        { repository: 'walk.test/kept', manifest: kept, reference: '1' },
      ]);
      await unlink(blobFile(dir, gone.digest));

      const events: ProgressEvent[] = [];
      const inv = await makeInventory({ target: { kind: 'layout', dir }, onProgress: (e) => events.push(e) });
      const warnings = events.filter((e) => e.kind === 'warning').map((e) => (e as { message: string }).message);
      expect(warnings).toEqual([
        `@${chain[MAX_INDEX_DEPTH]!.digest}: indexes nested more than ${MAX_INDEX_DEPTH} deep are not followed`,
        `@${gone.digest} (an index child) is missing from the target; left out`,
      ]);
      const listed = inv.file.toString('utf8');
      expect(listed).toContain(chain[MAX_INDEX_DEPTH]!.digest); // the deep index itself
      expect(listed).not.toContain(chain[MAX_INDEX_DEPTH + 1]!.digest); // not what it lists
      expect(listed).not.toContain(gone.digest);
      expect(listed).toContain(kept.digest);
      // 5 indexes of the deep chain, partial, kept (top), kept (child): the leaf under the deep index is not read.
      expect(inv.manifests).toBe(MAX_INDEX_DEPTH + 1 + 3);
      expect(inv.images).toBe(3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
