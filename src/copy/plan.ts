/**
 * Planning: from resolved images to the exact content of a bundle — every blob once, in archive
 * order, with the source to read it from, and the `index.json` that names every image.
 *
 * For a delta (`delivered` given), configs and layers the target already holds become `external`
 * instead of carried; manifests and indexes are always carried (they are small, and import needs
 * them to tag the images). The plan is a pure function of its inputs, so an interrupted delta
 * resumes like any bundle.
 */
import { AirlockError } from '../errors.js';
import type { Digest } from '../digest/digest.js';
import type { BundleParent, BundleTotals, ExternalBlob } from '../bundle/manifest.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { RawManifest } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import { CONTAINERD_NAME_ANNOTATION, REF_NAME_ANNOTATION } from '../layout/paths.js';
import type { Source } from '../transport/types.js';
import { conflictingSizes, type ResolvedImage } from './resolve.js';
import type { DeliveredSet } from './since.js';
import type { TrackedImage } from './image-progress.js';

export interface PlannedBlob {
  desc: Descriptor;
  /** Set for manifests and indexes: their bytes are already in memory. */
  manifest?: RawManifest;
  /** The blob's bytes when they are already in memory (manifests, indexes, configs read while resolving). */
  bytes?: Buffer;
  /** Where to read it from (first image that referenced it). */
  source: Source;
  repository: string;
}

export interface PlannedImage {
  name: string;
  source: string;
  digest: Digest;
  mediaType: string;
  size: number;
  platforms: string[];
  upstreamDigest?: Digest;
  /** Bytes of every distinct blob of this image (manifests included), as if it were alone. */
  bytes: number;
}

export interface BundlePlan {
  images: PlannedImage[];
  /** Every blob carried, exactly once: manifests and configs first (small), then layers. */
  blobs: PlannedBlob[];
  /** Delta only: what the parents made it against, oldest first. */
  parents?: BundleParent[];
  /** Delta only: blobs the images need that a parent delivered, in the same order rule. */
  external?: ExternalBlob[];
  indexJson: Buffer;
  /** `bytes` counts carried blobs only; `externalBytes` (delta only) the external ones. */
  totals: BundleTotals;
}

export interface PlanOptions {
  /** What the target already holds (`--since`): makes the plan a delta. */
  delivered?: DeliveredSet;
}

/**
 * @throws INTEGRITY when two images give one digest different sizes (bundle.json lists each blob
 *   once, with one size; import would refuse the images that disagree with it)
 * @throws INPUT_INVALID when a delivered blob has another size than the image's manifest says
 */
export function planBundle(resolved: ResolvedImage[], opts: PlanOptions = {}): BundlePlan {
  const small = new Map<Digest, PlannedBlob>();
  const layers = new Map<Digest, PlannedBlob>();
  const images = new Map<string, PlannedImage>();
  const sizes = new Map<Digest, { size: number; image: string }>();
  let referencedBytes = 0;
  for (const image of resolved) {
    if (images.has(image.name)) continue;
    const planned: PlannedImage = {
      name: image.name,
      source: image.sourceRef,
      digest: image.top.digest,
      mediaType: image.top.mediaType,
      size: image.top.bytes.length,
      platforms: [...new Set(image.platforms)],
      ...(image.upstreamDigest === undefined ? {} : { upstreamDigest: image.upstreamDigest }),
      bytes: 0,
    };
    images.set(image.name, planned);
    const seenInImage = new Set<Digest>();
    const add = (target: Map<Digest, PlannedBlob>, blob: PlannedBlob): void => {
      const first = sizes.get(blob.desc.digest);
      if (first === undefined) sizes.set(blob.desc.digest, { size: blob.desc.size, image: image.name });
      else if (first.size !== blob.desc.size) {
        throw conflictingSizes(blob.desc.digest, { size: first.size, where: `image ${first.image}` }, { size: blob.desc.size, where: `image ${image.name}` });
      }
      if (!seenInImage.has(blob.desc.digest)) {
        seenInImage.add(blob.desc.digest);
        planned.bytes += blob.desc.size;
        referencedBytes += blob.desc.size;
      }
      if (!small.has(blob.desc.digest) && !layers.has(blob.desc.digest)) target.set(blob.desc.digest, blob);
    };
    for (const m of image.manifests) {
      const desc = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
      add(small, { desc, manifest: m, bytes: m.bytes, source: image.source, repository: image.repository });
    }
    const configs = new Set(image.manifests.flatMap((m) => (m.kind === 'manifest' ? [m.parsed.config.digest] : [])));
    for (const desc of image.blobs) {
      const bytes = image.configs.get(desc.digest);
      add(configs.has(desc.digest) ? small : layers, {
        desc: plainDescriptor(desc),
        ...(bytes === undefined ? {} : { bytes }),
        source: image.source,
        repository: image.repository,
      });
    }
  }
  const all = [...small.values(), ...layers.values()];
  const { carried: blobs, external } = splitDelivered(all, opts.delivered);
  const index = {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [...images.values()].map((img) => ({
      mediaType: img.mediaType,
      digest: img.digest,
      size: img.size,
      annotations: { [REF_NAME_ANNOTATION]: img.name, [CONTAINERD_NAME_ANNOTATION]: img.name },
    })),
  };
  return {
    images: [...images.values()],
    blobs,
    ...(opts.delivered === undefined ? {} : { parents: opts.delivered.parents, external }),
    indexJson: Buffer.from(JSON.stringify(index, null, 2) + '\n'),
    totals: {
      images: images.size,
      blobs: blobs.length,
      bytes: blobs.reduce((n, b) => n + b.desc.size, 0),
      referencedBytes,
      ...(opts.delivered === undefined ? {} : { externalBytes: external.reduce((n, b) => n + b.size, 0) }),
    },
  };
}

/** Configs and layers the target holds become external; manifests are always carried. */
function splitDelivered(all: PlannedBlob[], delivered: DeliveredSet | undefined): { carried: PlannedBlob[]; external: ExternalBlob[] } {
  if (delivered === undefined) return { carried: all, external: [] };
  const carried: PlannedBlob[] = [];
  const external: ExternalBlob[] = [];
  for (const blob of all) {
    const have = blob.manifest === undefined ? delivered.blobs.get(blob.desc.digest) : undefined;
    if (have === undefined) {
      carried.push(blob);
      continue;
    }
    if (have.size !== blob.desc.size) {
      throw new AirlockError(
        'INPUT_INVALID',
        `mismatched base: ${blob.desc.digest} is ${blob.desc.size} bytes in ${blob.source.description}/${blob.repository}, but ${have.size} bytes in --since ${have.bundle}`,
        {
          subject: blob.desc.digest,
          hint: 'the --since file describes other content under this digest: check that it is genuine',
        },
      );
    }
    external.push({ digest: blob.desc.digest, size: blob.desc.size, mediaType: blob.desc.mediaType, bundle: have.bundle });
  }
  return { carried, external };
}

/** Only what identifies content: annotations, URLs and platforms belong to the referrer. */
function plainDescriptor(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/**
 * The images of a bundle as its progress tracks them: each with every digest it needs, its
 * platforms and its size (from `plan`, which lists each name once).
 */
export function trackedImages(resolved: readonly ResolvedImage[], plan: BundlePlan): TrackedImage[] {
  const byName = new Map<string, ResolvedImage>();
  for (const r of resolved) if (!byName.has(r.name)) byName.set(r.name, r);
  return plan.images.flatMap((image) => {
    const r = byName.get(image.name);
    if (r === undefined) return [];
    const digests = [...r.manifests.map((m) => m.digest), ...r.blobs.map((b) => b.digest)];
    return [{ name: image.name, digests, bytes: image.bytes, ...(image.platforms.length === 0 ? {} : { detail: image.platforms.join(',') }) }];
  });
}
