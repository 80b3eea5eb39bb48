/**
 * Planning a direct copy (`airlock copy`): from resolved images and the names they land under to
 * the {@link CopyPlan} the engine runs. Every blob is listed once, read from the first image that
 * referenced it; each target repository receives its images' manifests, children before the indexes
 * that list them, and its tags.
 */
import type { Digest } from '../digest/digest.js';
import type { RawManifest } from '../oci/manifest.js';
import type { CopyPlan, RepositoryPlan } from './engine.js';
import { conflictingSizes, type ResolvedImage } from './resolve.js';
import type { BlobUnit } from './transfer.js';

/** Where one resolved image lands: a target repository, and its tag (none for a digest-only name). */
export interface Landing {
  repository: string;
  tag: string | undefined;
}

/**
 * @param images resolved images, in the order given
 * @param landings where each lands, in the same order
 * @throws INTEGRITY when two images give one digest different sizes (the sink would store one)
 */
export function planCopy(images: readonly ResolvedImage[], landings: readonly Landing[]): CopyPlan {
  const units = new Map<Digest, BlobUnit>();
  const repos = new Map<string, RepositoryPlan & { seen: Set<Digest> }>();
  images.forEach((image, i) => {
    const { repository, tag } = landings[i]!;
    let repo = repos.get(repository);
    if (repo === undefined) repos.set(repository, (repo = { repository, manifests: [], tags: [], untagged: [], seen: new Set() }));
    // Resolution lists an image's manifests children first, top last, each once.
    for (const m of image.manifests) {
      if (repo.seen.has(m.digest)) continue;
      repo.seen.add(m.digest);
      repo.manifests.push(m);
    }
    for (const desc of image.blobs) {
      let unit = units.get(desc.digest);
      if (unit !== undefined && unit.desc.size !== desc.size) {
        throw conflictingSizes(desc.digest, { size: unit.desc.size, where: `image ${unit.image}` }, { size: desc.size, where: `image ${image.name}` });
      }
      if (unit === undefined) {
        unit = {
          desc: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size },
          repositories: [],
          from: { source: image.source, repository: image.repository },
          image: image.name,
        };
        units.set(desc.digest, unit);
      }
      if (!unit.repositories.includes(repository)) unit.repositories.push(repository);
    }
    const top: RawManifest = image.top;
    if (tag === undefined) repo.untagged.push({ manifest: top, image: image.name });
    else if (!repo.tags.some((t) => t.tag === tag)) repo.tags.push({ tag, manifest: top, image: image.name });
  });
  const blobs = [...units.values()];
  return {
    blobs,
    repositories: [...repos.values()].map(({ seen: _, ...r }) => r),
    bytes: blobs.reduce((n, u) => n + u.desc.size, 0),
  };
}
