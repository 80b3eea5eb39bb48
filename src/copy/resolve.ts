/**
 * Resolution: turn one image (a source, a repository and a tag or digest) into every manifest and
 * blob it consists of, before a single layer is copied.
 *
 * Manifests are small (≤ 4 MiB, checked) and are kept in memory with their exact bytes; blobs are
 * only described here. A single-platform image is kept as it is. Platform selection on an index keeps the upstream index when every child is
 * selected; when only some are, a new index listing the selected children is written (its digest
 * differs from upstream and both are recorded).
 */
import { AirlockError } from '../errors.js';
import type { Digest } from '../digest/digest.js';
import { formatPlatform, platformMatches, type Descriptor, type Platform } from '../oci/descriptor.js';
import { parseManifest, type ImageIndex, type RawManifest } from '../oci/manifest.js';
import { MAX_INDEX_DEPTH, walkManifests } from '../oci/walk.js';
import { MediaType } from '../oci/media-types.js';
import { VerifyingStream } from '../digest/verify.js';
import type { CallOptions, Source } from '../transport/types.js';
import { descriptorProblem, platformProblem } from '../oci/grammar.js';
import { runLimited } from './run-limited.js';
import { DEFAULT_MAX_CONCURRENT_BLOBS } from '../registry/limits.js';

/**
 * Most distinct manifests and indexes one image may consist of: 1000. A multi-platform image has
 * one per platform plus its index (a dozen or two; with attestations twice that); a source that
 * serves more is more likely hostile than real, and each one costs a request and stays in memory
 * until the bundle is written.
 */
export const MAX_MANIFESTS_PER_IMAGE = 1000;
/** Image configs are a few KiB; one larger than this is read for its platform no further. */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
/**
 * Configs read for their platform are kept (verified) up to this size: 64 KiB, which covers real
 * image configs, so the bundle writer takes them from memory instead of fetching them again: one
 * request fewer per image (a third of all requests for small images; the registry spends ~3 ms of
 * CPU on each). Larger ones are fetched again when written, so memory stays bounded.
 */
const KEEP_CONFIG_BYTES = 64 * 1024;

export interface ImageToResolve {
  /** The name the image is recorded under, e.g. `quay.io/coreos/etcd:v3.3.0`. */
  name: string;
  /** Where it is read from, as the operator would write it: `quay.io/coreos/etcd:v3.3.0`, `oci:DIR:NAME`. */
  sourceRef: string;
  source: Source;
  repository: string;
  /** Tag or digest. */
  reference: string;
  /** Only these platforms (absent: all). */
  platforms?: Platform[];
}

export interface ResolvedImage {
  name: string;
  sourceRef: string;
  source: Source;
  repository: string;
  /** The top-level manifest or index as it will be stored. */
  top: RawManifest;
  /** Set when platform selection replaced the upstream index: the upstream digest. */
  upstreamDigest?: Digest;
  /** Every manifest and index of the image, children before their parents, top last. */
  manifests: RawManifest[];
  /** Every config and layer blob, in manifest order, possibly with repeats across children. */
  blobs: Descriptor[];
  /** `os/arch[/variant]` of every platform manifest included. */
  platforms: string[];
  /** Config blobs already read (and verified) while resolving, by digest: see KEEP_CONFIG_BYTES. */
  configs: Map<Digest, Buffer>;
}

/**
 * Manifests already fetched, by source, repository and digest: content at a digest never changes,
 * so images that share an index or child fetch it once. Holds promises, so concurrent resolutions
 * wait for one request.
 */
export class ManifestCache {
  private readonly bySource = new Map<Source, Map<string, Promise<RawManifest>>>();

  get(source: Source, repository: string, digest: Digest, opts: CallOptions): Promise<RawManifest> {
    let cache = this.bySource.get(source);
    if (cache === undefined) this.bySource.set(source, (cache = new Map()));
    const key = `${repository}@${digest}`;
    let pending = cache.get(key);
    if (pending === undefined) {
      pending = source.getManifest(repository, digest, opts);
      cache.set(key, pending);
      // A failed fetch is not kept: the next image asks again (and fails with its own name).
      pending.catch(() => cache.delete(key));
    }
    return pending;
  }
}

/** What one image's walk has seen: manifests by digest, and the size each blob digest was given. */
interface WalkState {
  image: ImageToResolve;
  cache: ManifestCache;
  walked: Set<Digest>;
  sizes: Map<Digest, { size: number; manifest: Digest }>;
  opts: CallOptions;
}

export async function resolveImage(image: ImageToResolve, opts: CallOptions & { cache?: ManifestCache } = {}): Promise<ResolvedImage> {
  const call: CallOptions = opts.signal === undefined ? {} : { signal: opts.signal };
  const fetched = await image.source.getManifest(image.repository, image.reference, call);
  let top = fetched;
  let upstreamDigest: Digest | undefined;
  if (fetched.kind === 'index' && image.platforms !== undefined) {
    const selected = selectPlatforms(fetched.parsed, image.platforms, image.name);
    if (selected.length !== fetched.parsed.manifests.length) {
      top = filteredIndex(fetched, selected, image.name);
      upstreamDigest = fetched.digest;
    }
  }
  const result: ResolvedImage = {
    name: image.name,
    sourceRef: image.sourceRef,
    source: image.source,
    repository: image.repository,
    top,
    ...(upstreamDigest === undefined ? {} : { upstreamDigest }),
    manifests: [],
    blobs: [],
    platforms: [],
    configs: new Map(),
  };
  const state: WalkState = { image, cache: opts.cache ?? new ManifestCache(), walked: new Set(), sizes: new Map(), opts: call };
  await walk(state, top, result);
  return result;
}

/**
 * Add `top` and everything below it to `out`, children before their parents. A manifest already
 * walked for this image (an index may list one child many times, or share children between
 * nested indexes) is not fetched or added again.
 */
async function walk(state: WalkState, top: RawManifest, out: ResolvedImage): Promise<void> {
  const { image } = state;
  await walkManifests(top, {
    seen: state.walked,
    cap: {
      manifests: MAX_MANIFESTS_PER_IMAGE,
      exceeded: () =>
        new AirlockError('UNSUPPORTED', `${image.name}: more than ${MAX_MANIFESTS_PER_IMAGE} distinct manifests and indexes in one image`, {
          subject: image.name,
          hint: `airlock bundles at most ${MAX_MANIFESTS_PER_IMAGE} per image; select platforms in the image list, or check the source: real images have a few dozen`,
        }),
    },
    descriptor: (child, index) => checkDescriptor(state, child, index.digest),
    child: async (child) => {
      const raw = await state.cache.get(image.source, image.repository, child.digest, state.opts);
      if (raw.digest !== child.digest || raw.bytes.length !== child.size) {
        throw new AirlockError('INTEGRITY', `${image.name} (child ${child.digest}): manifest does not match the index descriptor`, {
          subject: child.digest,
          details: { expected: { digest: child.digest, size: child.size }, got: { digest: raw.digest, size: raw.bytes.length } },
        });
      }
      return raw;
    },
    manifest: async (manifest, blobs, platform) => {
      for (const d of blobs) checkDescriptor(state, d, manifest.digest);
      out.blobs.push(...blobs);
      const p = platform ?? (await configPlatform(image, manifest.parsed.config, out.configs, state.opts));
      if (p !== undefined) out.platforms.push(formatPlatform(p));
      out.manifests.push(manifest);
    },
    index: (index) => {
      out.manifests.push(index);
    },
    tooDeep: () => {
      throw new AirlockError('UNSUPPORTED', `${image.name}: indexes nested more than ${MAX_INDEX_DEPTH} deep`, {
        subject: image.name,
      });
    },
  });
}

/**
 * Refuse a descriptor bundle.json could not carry (a media type or platform outside the grammar,
 * see oci/grammar.ts), or one that gives a digest another size than an earlier manifest of the
 * same image did: a bundle lists each blob once, with one size.
 */
function checkDescriptor(state: WalkState, d: Descriptor, manifest: Digest): void {
  const name = state.image.name;
  const problem = descriptorProblem(d);
  if (problem !== undefined) {
    throw new AirlockError('REGISTRY', `${name}: manifest ${manifest}: descriptor of ${d.digest}: ${problem}`, {
      subject: d.digest,
      hint: 'the source serves a manifest airlock cannot sign into a bundle; fix or re-push the image',
    });
  }
  const seen = state.sizes.get(d.digest);
  if (seen === undefined) {
    state.sizes.set(d.digest, { size: d.size, manifest });
  } else if (seen.size !== d.size) {
    throw conflictingSizes(
      d.digest,
      { size: seen.size, where: `${name} (manifest ${seen.manifest})` },
      { size: d.size, where: `${name} (manifest ${manifest})` },
    );
  }
}

/** INTEGRITY: one digest given two sizes. */
export function conflictingSizes(digest: Digest, a: { size: number; where: string }, b: { size: number; where: string }): AirlockError {
  return new AirlockError('INTEGRITY', `blob ${digest} is ${a.size} bytes in ${a.where} but ${b.size} bytes in ${b.where}`, {
    subject: digest,
    hint: 'one digest names one content of one size: the source serves inconsistent manifests; fix or re-push the image, or leave one of them out',
    details: { digest, sizes: [a, b] },
  });
}

/**
 * The platform of a single-platform image, from its config (`os`, `architecture`, `variant`): one
 * small extra request per such image, so `inspect` and the bundle manifest can show it. Configs
 * that are not image configs (artifacts) or are unusually large give no platform.
 */
async function configPlatform(image: ImageToResolve, config: Descriptor, keep: Map<Digest, Buffer>, opts: CallOptions): Promise<Platform | undefined> {
  if (config.mediaType !== MediaType.OciConfig && config.mediaType !== MediaType.DockerConfig) return undefined;
  if (config.size > MAX_CONFIG_BYTES) return undefined;
  const body = await image.source.openBlob(image.repository, config, opts);
  const verified = body.pipe(new VerifyingStream(config, `config ${config.digest} of ${image.name}`));
  body.on('error', (err) => verified.destroy(err));
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of verified) chunks.push(chunk as Buffer);
  } finally {
    // A failed check leaves the source unread: close it, or it keeps its download slot and connection.
    body.destroy();
  }
  const bytes = Buffer.concat(chunks);
  if (bytes.length <= KEEP_CONFIG_BYTES) keep.set(config.digest, bytes);
  let doc: Partial<Platform> | null;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Partial<Platform>;
  } catch {
    return undefined;
  }
  if (doc === null || typeof doc !== 'object' || typeof doc.os !== 'string' || typeof doc.architecture !== 'string') return undefined;
  const platform: Platform =
    typeof doc.variant === 'string' ? { os: doc.os, architecture: doc.architecture, variant: doc.variant } : { os: doc.os, architecture: doc.architecture };
  const problem = platformProblem(platform);
  if (problem !== undefined) {
    throw new AirlockError('REGISTRY', `${image.name}: config ${config.digest}: ${problem}`, {
      subject: config.digest,
      hint: 'the source serves an image config airlock cannot sign into a bundle; fix or re-push the image',
    });
  }
  return platform;
}

function selectPlatforms(index: ImageIndex, wanted: Platform[], name: string): Descriptor[] {
  const selected = index.manifests.filter((d) => wanted.some((w) => platformMatches(w, d.platform)));
  if (selected.length === 0) {
    const available = index.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : 'unknown')).join(', ');
    throw new AirlockError('NOT_FOUND', `${name}: no manifest for ${wanted.map(formatPlatform).join(', ')}`, {
      subject: name,
      hint: `this image has: ${available}; change the platforms in the image list`,
    });
  }
  return selected;
}

function filteredIndex(upstream: RawManifest & { kind: 'index' }, selected: Descriptor[], name: string): RawManifest {
  const doc: ImageIndex = { ...upstream.parsed, manifests: selected };
  const bytes = Buffer.from(JSON.stringify(doc));
  return parseManifest(bytes, upstream.mediaType, name);
}

/**
 * Images resolved at once by default: as many as a registry client moves blobs at once (4). Each
 * resolution is a few small requests; against a remote registry their round trips, not bytes, are
 * the cost, so several run together. The result keeps the input order, whatever order they finish in.
 */
export const RESOLVE_CONCURRENCY = DEFAULT_MAX_CONCURRENT_BLOBS;

/** Resolve every image, `concurrency` at a time; `onResolved` sees them in input order. */
export async function resolveAll(
  images: readonly ImageToResolve[],
  opts: CallOptions & { concurrency?: number; onResolved?: (r: ResolvedImage) => void } = {},
): Promise<ResolvedImage[]> {
  const results: Array<ResolvedImage | undefined> = new Array<ResolvedImage | undefined>(images.length);
  const cache = new ManifestCache();
  let reported = 0;
  await runLimited(
    images.map((image, i) => ({ image, i })),
    opts.concurrency ?? RESOLVE_CONCURRENCY,
    opts.signal,
    async ({ image, i }, signal) => {
      results[i] = await resolveImage(image, { signal, cache });
      // Advance before the call: `onResolved?.(results[reported++])` would skip the increment (and
      // spin forever) when there is no listener, since an optional call skips its arguments too.
      while (reported < results.length && results[reported] !== undefined) {
        const ready = results[reported++]!;
        opts.onResolved?.(ready);
      }
    },
  );
  return results as ResolvedImage[];
}
