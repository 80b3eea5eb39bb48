/**
 * `airlock inventory`: what a target on the secure side holds, as an inventory file
 * (`src/inventory/format.ts`) for `bundle create --since` on the connected side, which then ships
 * exactly what is missing — useful where the chain of delta bundles was broken.
 *
 * A registry is listed through its catalog (every page) under the prefix, every repository's tags,
 * every tag's manifest and, for an index, its children; every blob they reference is listed with
 * its size, manifests included. That is one request per repository and per distinct manifest,
 * O(images), run a few at a time ({@link DEFAULT_INVENTORY_CONCURRENCY}); blobs are not HEADed
 * (that would be O(blobs)): distribution refuses a manifest whose blobs it lacks, so a manifest
 * stands for its blobs. A stale or optimistic inventory is caught by `bundle import`, which checks
 * every blob a delta does not carry before writing anything.
 *
 * An OCI layout is listed from its index.json; there every referenced blob file is checked
 * (a stat), and one that is absent or of the wrong size is left out with a warning.
 */
import { AirlockError, isAirlockError } from '../errors.js';
import { sha256Digest, type Digest } from '../digest/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { RawManifest } from '../oci/manifest.js';
import { MAX_INDEX_DEPTH, walkManifests } from '../oci/walk.js';
import { Layout } from '../layout/layout.js';
import { readIndex } from '../layout/index-file.js';
import { REF_NAME_ANNOTATION } from '../layout/paths.js';
import { writeFileAtomic } from '../layout/atomic.js';
import type { SigningKey } from '../bundle/keys.js';
import type { Catalog } from '../registry/catalog.js';
import type { CallOptions, RepositoryCatalog, Source } from '../transport/types.js';
import { MAX_INVENTORY_BYTES, writeInventory, type InventoryPayload } from '../inventory/format.js';
import { silent, type ProgressListener } from '../copy/progress.js';
import { runLimited } from '../copy/run-limited.js';
import { DEFAULT_MAX_CONCURRENT_BLOBS } from '../registry/limits.js';
import { checkOutputFree } from '../fs/output-file.js';
import { isStateRepository } from '../rollback/import-state.js';

/**
 * Requests in flight: the registry client's default for blobs (4). Listing is one small GET per
 * repository and per manifest, so latency, not bandwidth, is the cost; 4 hides most of it without
 * loading the registry.
 */
export const DEFAULT_INVENTORY_CONCURRENCY = DEFAULT_MAX_CONCURRENT_BLOBS;

/** A registry as the inventory reads it: manifests and tags, and its catalog. */
export interface CatalogSource extends Source {
  readonly catalog: RepositoryCatalog;
}

export type InventoryTarget = { kind: 'registry'; host: string; prefix: string; registry: CatalogSource } | { kind: 'layout'; dir: string };

export interface InventoryOptions {
  target: InventoryTarget;
  /** Sign the inventory (the connected side checks it with `--trust`). */
  signingKey?: SigningKey;
  /** Requests in flight. Default {@link DEFAULT_INVENTORY_CONCURRENCY}. */
  concurrency?: number;
  /** Write the file here (atomically) instead of only returning it. */
  output?: string;
  /** Replace an existing `output`. */
  force?: boolean;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  now?: () => Date;
}

export interface InventoryResult {
  /** The inventory file's bytes. */
  file: Buffer;
  /** The inventory id: sha256 of the payload. */
  id: Digest;
  target: string;
  output?: string;
  signed: boolean;
  keyId?: string;
  /** Repositories listed (a layout: those its image names use). */
  repositories: number;
  images: number;
  manifests: number;
  blobs: number;
  /** Sum of the listed blobs' sizes. */
  bytes: number;
}

/** What a walk collects: images, and every blob by digest with its size. */
class Collector {
  readonly images: Array<{ name: string; digest: Digest }> = [];
  readonly blobs = new Map<Digest, number>();
  manifests = 0;

  add(desc: Pick<Descriptor, 'digest' | 'size'>): void {
    if (!this.blobs.has(desc.digest)) this.blobs.set(desc.digest, desc.size);
  }
}

/**
 * List a target and make its inventory file.
 *
 * @throws AUTH / NOT_FOUND when a registry refuses or lacks the catalog, INPUT_INVALID for a
 *   directory that is not a layout, USAGE for an existing `output`, and the target's errors
 * @example
 * const inv = await makeInventory({ target: { kind: 'layout', dir: '/srv/layout' } });
 * process.stdout.write(inv.file);
 */
export async function makeInventory(opts: InventoryOptions): Promise<InventoryResult> {
  if (opts.output !== undefined) await checkOutputFree(opts.output, opts.force === true);
  const collected = new Collector();
  const { target } = opts;
  const name = target.kind === 'layout' ? `oci:${target.dir}` : target.prefix === '' ? target.host : `${target.host}/${target.prefix}`;
  const repositories = target.kind === 'layout' ? await listLayout(target.dir, collected, opts) : await listRegistry(target, collected, opts);
  const created = opts.now?.() ?? new Date();
  created.setMilliseconds(0);
  const payload: InventoryPayload = {
    schemaVersion: 1,
    created: created.toISOString().replace('.000Z', 'Z'),
    target: name,
    images: [...collected.images].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    blobs: [...collected.blobs].map(([digest, size]) => ({ digest, size })).sort((a, b) => (a.digest < b.digest ? -1 : 1)),
  };
  const file = writeInventory(payload, opts.signingKey);
  if (file.length > MAX_INVENTORY_BYTES) {
    throw new AirlockError('UNSUPPORTED', `the inventory of ${name} would be ${file.length} bytes, over the ${MAX_INVENTORY_BYTES}-byte limit readers accept`, {
      subject: name,
      hint: 'list a narrower prefix (--registry HOST/PREFIX)',
    });
  }
  if (opts.output !== undefined) await writeFileAtomic(opts.output, file);
  return {
    file,
    id: sha256Digest(JSON.stringify(payload)),
    target: name,
    ...(opts.output === undefined ? {} : { output: opts.output }),
    signed: opts.signingKey !== undefined,
    ...(opts.signingKey === undefined ? {} : { keyId: opts.signingKey.keyId }),
    repositories,
    images: payload.images.length,
    manifests: collected.manifests,
    blobs: payload.blobs.length,
    bytes: payload.blobs.reduce((n, b) => n + b.size, 0),
  };
}

/** Walks manifests once per digest, following index children. */
class ManifestWalker {
  /**
   * Index children by digest, fetched once even when several repositories share them: by the
   * first walk that reaches one, which also walks what it references. A top (read by tag) is not
   * here: when it is also a child, it is read again as one.
   */
  readonly #fetched = new Map<Digest, Promise<RawManifest | undefined>>();

  constructor(
    readonly source: Source,
    readonly collected: Collector,
    readonly progress: ProgressListener,
  ) {}

  /** Record what `top` references, and every child not fetched yet; children are read from `repository`. */
  async walk(top: RawManifest, repository: string, call: CallOptions): Promise<void> {
    await walkManifests(top, {
      child: (child) => this.#child(child, repository, call),
      manifest: async (m, blobs) => {
        for (const b of blobs) await this.blob(b, m.digest);
      },
      tooDeep: (m) => {
        this.progress({ kind: 'warning', message: `${repository}@${m.digest}: indexes nested more than ${MAX_INDEX_DEPTH} deep are not followed` });
      },
    });
  }

  /** A referenced blob; a layout checks its file (see {@link LayoutWalker}). */
  async blob(desc: Descriptor, _referrer: Digest): Promise<void> {
    this.collected.add(desc);
  }

  /** A child to walk, or undefined when another walk (or this one) has it, or it is missing. */
  async #child(child: Descriptor, repository: string, call: CallOptions): Promise<RawManifest | undefined> {
    const fetched = this.#fetched.get(child.digest);
    if (fetched !== undefined) {
      await fetched;
      return undefined;
    }
    const fetching = this.#fetch(child, repository, call);
    this.#fetched.set(child.digest, fetching);
    return fetching;
  }

  async #fetch(child: Descriptor, repository: string, call: CallOptions): Promise<RawManifest | undefined> {
    let m: RawManifest;
    try {
      m = await this.source.getManifest(repository, child.digest, call);
    } catch (err) {
      if (!isAirlockError(err, 'NOT_FOUND')) throw err;
      this.progress({ kind: 'warning', message: `${repository}@${child.digest} (an index child) is missing from the target; left out` });
      return undefined;
    }
    this.read(m);
    return m;
  }

  /** A manifest read: counted, and listed with its size like the blobs it references. */
  read(m: RawManifest): void {
    this.collected.manifests++;
    this.collected.add({ digest: m.digest, size: m.bytes.length });
    this.progress({ kind: 'blob', digest: m.digest, size: m.bytes.length });
    this.progress({ kind: 'bytes', bytes: m.bytes.length });
  }
}

/** Every repository under the prefix, its tags, their manifests. @returns repositories listed */
async function listRegistry(target: Extract<InventoryTarget, { kind: 'registry' }>, collected: Collector, opts: InventoryOptions): Promise<number> {
  const progress = opts.onProgress ?? silent;
  const concurrency = opts.concurrency ?? DEFAULT_INVENTORY_CONCURRENCY;
  const call: CallOptions = opts.signal === undefined ? {} : { signal: opts.signal };
  progress({ kind: 'phase', phase: `listing the repositories of ${target.host}${target.prefix === '' ? '' : `/${target.prefix}`}` });
  let catalog: Catalog;
  try {
    catalog = await target.registry.catalog.listRepositories({ prefix: target.prefix, ...call });
  } catch (err) {
    if (!isAirlockError(err, 'AUTH', 'NOT_FOUND')) throw err;
    throw new AirlockError(err.code, `${err.message}: an inventory needs the registry's catalog`, {
      subject: target.host,
      hint: 'use an account the registry lets read /v2/_catalog (a token server must grant registry:catalog:*)',
      cause: err,
    });
  }
  // airlock's own import records (rollback/import-state.ts) are bookkeeping, not images the target holds.
  const repositories = [...catalog.repositories].filter((r) => !isStateRepository(r)).sort();
  progress({ kind: 'phase', phase: 'listing tags', items: repositories.length, noun: 'repository' });
  const tagged: Array<{ repository: string; tag: string }> = [];
  await runLimited(repositories, concurrency, opts.signal, async (repository, signal) => {
    let tags: string[];
    try {
      tags = await target.registry.listTags(repository, { signal });
    } catch (err) {
      if (!isAirlockError(err, 'NOT_FOUND')) throw err;
      tags = []; // listed in the catalog, but every tag deleted since
    }
    for (const tag of [...tags].sort()) tagged.push({ repository, tag });
  });
  progress({ kind: 'phase', phase: 'reading manifests', items: tagged.length, noun: 'tag' });
  const walker = new ManifestWalker(target.registry, collected, progress);
  const tops = new Map<Digest, Promise<void>>();
  await runLimited(tagged, concurrency, opts.signal, async ({ repository, tag }, signal) => {
    let m: RawManifest;
    try {
      m = await target.registry.getManifest(repository, tag, { signal });
    } catch (err) {
      if (!isAirlockError(err, 'NOT_FOUND')) throw err;
      return; // deleted while we listed
    }
    walker.read(m);
    collected.images.push({ name: `${target.host}/${repository}:${tag}`, digest: m.digest });
    const walked = tops.get(m.digest) ?? walker.walk(m, repository, { signal });
    tops.set(m.digest, walked);
    await walked;
  });
  return repositories.length;
}

/** A layout's blobs count only when their file is there with the right size. */
class LayoutWalker extends ManifestWalker {
  constructor(
    readonly layout: Layout,
    collected: Collector,
    progress: ProgressListener,
  ) {
    super(layout, collected, progress);
  }

  override async blob(desc: Descriptor, referrer: Digest): Promise<void> {
    if (this.collected.blobs.has(desc.digest)) return;
    if (await this.layout.hasBlob('', desc)) this.collected.add(desc);
    else
      this.progress({
        kind: 'warning',
        message: `${this.layout.description} lacks blob ${desc.digest} (${desc.size} bytes) of manifest ${referrer}; left out`,
      });
  }
}

/** Every manifest index.json lists (named or not) and what it references. @returns the repositories its names use */
async function listLayout(dir: string, collected: Collector, opts: InventoryOptions): Promise<number> {
  const progress = opts.onProgress ?? silent;
  const index = await readIndex(dir);
  const layout = new Layout(dir);
  progress({ kind: 'phase', phase: `reading the manifests of oci:${dir}`, items: index.manifests.length, noun: 'manifest' });
  const walker = new LayoutWalker(layout, collected, progress);
  const walked = new Set<Digest>();
  for (const entry of index.manifests) {
    opts.signal?.throwIfAborted();
    const name = entry.annotations?.[REF_NAME_ANNOTATION];
    if (name !== undefined) collected.images.push({ name, digest: entry.digest });
    if (walked.has(entry.digest)) continue;
    walked.add(entry.digest);
    const m = await layout.getManifest('', entry.digest);
    walker.read(m);
    await walker.walk(m, '', {});
  }
  return new Set(collected.images.map((i) => i.name.replace(/(?:@[^/]*|:[^/:]*)$/, ''))).size;
}
