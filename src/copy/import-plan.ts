/**
 * Planning an import: from the signed bundle manifest and the archive's index to what each target
 * repository needs — its blobs (each once), its manifests (children before their indexes) and its
 * tags — before anything is written.
 *
 * The archive index is unsigned: it only says where an entry is. Every carried blob must have an
 * entry of the signed size, and every manifest is read through a VerifyingStream against the signed
 * digest before it is parsed; layers are verified the same way later, while they are pushed.
 */
import { buffer } from 'node:stream/consumers';
import { AirlockError, isAirlockError } from '../errors.js';
import type { Digest } from '../digest/digest.js';
import { VerifyingStream } from '../digest/verify.js';
import type { Descriptor } from '../oci/descriptor.js';
import { MAX_MANIFEST_BYTES, parseManifest, type RawManifest } from '../oci/manifest.js';
import { MAX_INDEX_DEPTH, walkManifestsSync } from '../oci/walk.js';
import { isManifestMediaType } from '../oci/media-types.js';
import { blobPath } from '../layout/paths.js';
import type { ArchiveReader } from '../bundle/archive-reader.js';
import type { BundleBlob, BundleManifest, ExternalBlob } from '../bundle/manifest.js';
import type { ImageMapping } from '../names/import-names.js';
import type { CopyPlan, RepositoryPlan } from './engine.js';
import type { BlobUnit } from './transfer.js';
import type { Source } from '../transport/types.js';

/** An import's plan: what the copy engine brings from the archive into the target. */
export type ImportPlan = CopyPlan;
export type { BlobUnit, RepositoryPlan };

/** What to do about a bundle whose content does not match what was signed. */
export const DAMAGED_BUNDLE_HINT =
  'the bundle is damaged or was altered after signing; nothing was tagged: copy it again (check its .sha256), run bundle verify, then import again';

function damaged(path: string, message: string, subject: string): AirlockError {
  return new AirlockError('INTEGRITY', `${path}: ${message}`, { subject, hint: DAMAGED_BUNDLE_HINT });
}

/** An INTEGRITY error from reading the archive, with the next step for the operator. */
export function withDamagedHint(err: unknown): unknown {
  if (!isAirlockError(err, 'INTEGRITY') || err.hint !== undefined) return err;
  return new AirlockError('INTEGRITY', err.message, {
    ...(err.subject === undefined ? {} : { subject: err.subject }),
    ...(err.details === undefined ? {} : { details: err.details }),
    hint: DAMAGED_BUNDLE_HINT,
    cause: err,
  });
}

/**
 * Check that every carried blob has an archive entry of its signed size, then read every manifest
 * and index (at most 4 MiB each) through a VerifyingStream and parse it.
 *
 * @returns the manifests by digest
 * @throws INTEGRITY naming the entry or blob
 */
export async function readBundleManifests(reader: ArchiveReader, manifest: BundleManifest, signal?: AbortSignal): Promise<Map<Digest, RawManifest>> {
  for (const blob of manifest.blobs) {
    const entry = reader.entry(blobPath(blob.digest));
    if (entry === undefined) throw damaged(reader.path, `blob ${blob.digest} is listed in the signed manifest but missing from the archive`, blob.digest);
    if (entry.size !== blob.size) {
      throw damaged(reader.path, `entry ${entry.path} is ${entry.size} bytes, the signed manifest says ${blob.size}`, blob.digest);
    }
  }
  const manifests = new Map<Digest, RawManifest>();
  for (const blob of manifest.blobs.filter((b) => isManifestMediaType(b.mediaType))) {
    signal?.throwIfAborted();
    manifests.set(blob.digest, await readManifestBlob(reader, blob));
  }
  return manifests;
}

async function readManifestBlob(reader: ArchiveReader, blob: BundleBlob): Promise<RawManifest> {
  const what = `manifest ${blob.digest} in ${reader.path}`;
  if (blob.size > MAX_MANIFEST_BYTES) {
    throw new AirlockError('UNSUPPORTED', `${what} is ${blob.size} bytes, over the 4 MiB limit`, { subject: blob.digest });
  }
  const entry = reader.openEntry(blobPath(blob.digest));
  const verified = new VerifyingStream(blob, what);
  entry.on('error', (err) => verified.destroy(err));
  let bytes: Buffer;
  try {
    bytes = await buffer(entry.pipe(verified));
  } catch (err) {
    throw withDamagedHint(err);
  }
  try {
    return parseManifest(bytes, blob.mediaType, what);
  } catch (err) {
    if (!isAirlockError(err, 'REGISTRY')) throw err;
    throw damaged(reader.path, err.message, blob.digest);
  }
}

/** Accumulates the plan while images are walked. */
class PlanBuilder {
  readonly units = new Map<Digest, BlobUnit>();
  readonly repos = new Map<string, RepositoryPlan & { seen: Set<Digest> }>();

  readonly path: string;

  constructor(
    /** The archive, as the source every carried blob is read from. */
    readonly source: Source,
    readonly carried: ReadonlyMap<Digest, BundleBlob>,
    readonly external: ReadonlyMap<string, ExternalBlob>,
    readonly manifests: ReadonlyMap<Digest, RawManifest>,
  ) {
    this.path = source.description;
  }

  repo(repository: string): RepositoryPlan & { seen: Set<Digest> } {
    let r = this.repos.get(repository);
    if (r === undefined) {
      r = { repository, manifests: [], tags: [], untagged: [], seen: new Set() };
      this.repos.set(repository, r);
    }
    return r;
  }

  blob(desc: Descriptor, repository: string, image: string): void {
    const signed = this.carried.get(desc.digest);
    const external = this.external.get(desc.digest);
    if (signed === undefined && external === undefined) {
      throw damaged(this.path, `image ${image} references blob ${desc.digest}, which the bundle neither carries nor lists as external`, desc.digest);
    }
    const listed = (signed ?? external)!;
    if (listed.size !== desc.size) {
      // Both sizes are signed (the manifest is carried under its signed digest): this is not damage
      // in transit but a bundle inconsistent from the start, which verify also refuses.
      throw new AirlockError(
        'INTEGRITY',
        `${this.path}: image ${image} references blob ${desc.digest} with size ${desc.size}, the bundle ${signed === undefined ? 'lists it as external with' : 'carries'} ${listed.size}`,
        {
          subject: desc.digest,
          hint: 'nothing was written; the signed bundle contradicts itself (made by an airlock that did not check sizes per digest, or from a hostile source): recreate it with a current airlock',
        },
      );
    }
    let unit = this.units.get(desc.digest);
    if (unit === undefined) {
      const d = listed;
      unit = {
        desc: { mediaType: d.mediaType, digest: d.digest, size: d.size },
        repositories: [],
        // An archive holds its blobs for every repository (see bundle/archive-source.ts).
        from: signed === undefined ? undefined : { source: this.source, repository: '' },
        image,
        ...(external === undefined ? {} : { parent: external.bundle }),
      };
      this.units.set(desc.digest, unit);
    }
    if (!unit.repositories.includes(repository)) unit.repositories.push(repository);
  }

  /** Add `top` and what it references to its repository, children before the indexes that list them. */
  walk(top: RawManifest, repository: string, image: string): void {
    const repo = this.repo(repository);
    walkManifestsSync(top, {
      // Per repository: a manifest two images of one repository share is pushed there once.
      seen: repo.seen,
      // Looked up before asking whether it was walked: a repeat that names another size is damage too.
      descriptor: (child) => void this.manifest(child, image),
      child: (child) => this.manifest(child, image),
      manifest: (m, blobs) => {
        for (const b of blobs) this.blob(b, repository, image);
        repo.manifests.push(m);
      },
      index: (m) => {
        repo.manifests.push(m);
      },
      tooDeep: () => {
        throw new AirlockError('UNSUPPORTED', `${image}: indexes nested more than ${MAX_INDEX_DEPTH} deep`, { subject: image });
      },
    });
  }

  manifest(desc: Pick<Descriptor, 'digest' | 'size'>, image: string): RawManifest {
    const m = this.manifests.get(desc.digest);
    if (m === undefined && this.external.has(desc.digest)) {
      // A delta carries every manifest (its external list holds configs and layers): the images
      // are tagged from the manifests this signed bundle vouches for.
      throw new AirlockError(
        'UNSUPPORTED',
        `${this.path}: image ${image}: manifest ${desc.digest} is listed as external; airlock delta bundles carry every manifest`,
        {
          subject: desc.digest,
          hint: 'create the bundle with a compatible airlock, or import a full bundle',
        },
      );
    }
    if (m === undefined) throw damaged(this.path, `image ${image}: manifest ${desc.digest} is not in the bundle`, desc.digest);
    if (m.bytes.length !== desc.size) throw damaged(this.path, `image ${image}: manifest ${desc.digest} is not ${desc.size} bytes`, desc.digest);
    return m;
  }
}

/**
 * Build the plan for `images` (already mapped to target repositories).
 *
 * @param source the archive (its description names it in messages)
 * @param manifests every manifest of the bundle, verified, by digest
 * @throws INTEGRITY when an image needs something the bundle does not carry
 */
export function planImport(source: Source, bundle: BundleManifest, manifests: ReadonlyMap<Digest, RawManifest>, images: readonly ImageMapping[]): ImportPlan {
  const carried = new Map(bundle.blobs.map((b) => [b.digest, b]));
  const external = new Map((bundle.external ?? []).map((b) => [b.digest as string, b]));
  const builder = new PlanBuilder(source, carried, external, manifests);
  const signedTop = new Map(bundle.images.map((i) => [i.name, i]));
  for (const image of images) {
    const top = builder.manifest({ digest: image.digest, size: signedTop.get(image.name)?.size ?? NaN }, image.name);
    builder.walk(top, image.repository, image.name);
    const repo = builder.repo(image.repository);
    if (image.tag === undefined) repo.untagged.push({ manifest: top, image: image.name });
    else if (!repo.tags.some((t) => t.tag === image.tag)) repo.tags.push({ tag: image.tag, manifest: top, image: image.name });
  }
  // Bundle order: the archive is read front to back as far as the uploads allow.
  const order = new Map(bundle.blobs.map((b, i) => [b.digest as string, i]));
  const blobs = [...builder.units.values()].sort((a, b) => (order.get(a.desc.digest) ?? Infinity) - (order.get(b.desc.digest) ?? Infinity));
  return {
    blobs,
    repositories: [...builder.repos.values()].map(({ seen: _, ...r }) => r),
    bytes: blobs.reduce((n, u) => n + (u.from === undefined ? 0 : u.desc.size), 0),
  };
}
