/**
 * `airlock copy SRC… DST`: images straight from registries or `oci:` layouts into a registry or an
 * `oci:` layout, without a bundle: to seed or drain a layout, or to mirror between two registries
 * on the same side of the gap.
 *
 * The same parts as create and import: images are expanded and resolved as `bundle create` does
 * (tag filters, platforms, the same name checks), they land under the names `bundle import` gives
 * (host kept under the target prefix unless `--strip-host`), and the copy engine moves them (check,
 * mount, upload with retries, manifests children first, tags last). Nothing is written before every
 * image is resolved and every name is mapped; the sink verifies every blob against its digest as it
 * stores it (a registry on the final PUT, a layout as it writes), so content that does not match
 * what the source's manifests say never lands.
 */
import { AirlockError } from '../errors.js';
import type { Digest } from '../digest/digest.js';
import { resolveAll, type ImageToResolve } from '../copy/resolve.js';
import { planCopy } from '../copy/copy-plan.js';
import { copyPlanned } from '../copy/engine.js';
import { DEFAULT_IMPORT_CONCURRENCY } from '../copy/limits.js';
import { silent, type ProgressListener } from '../copy/progress.js';
import { countTransfers, type BlobRetry, type BlobTransfer, type TransferCounts } from '../copy/transfer.js';
import type { Sink } from '../transport/types.js';
import { describeTarget, mapImages, targetName, type ImportTarget } from '../names/import-names.js';
import { checkImageNames } from '../names/create-names.js';
import { checkReservedNames } from '../rollback/import-rollback.js';

export interface CopyImagesOptions {
  images: ImageToResolve[];
  target: ImportTarget;
  /** The registry client of `target.host`, or the Layout of `target.dir`. */
  sink: Sink;
  stripHost?: boolean;
  /** Large uploads in flight. Default {@link DEFAULT_IMPORT_CONCURRENCY}. */
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  retry?: Partial<BlobRetry>;
}

export interface CopiedImage {
  name: string;
  /** Where it was read: `quay.io/coreos/etcd:v3.3`, `oci:DIR:NAME`. */
  source: string;
  /** Target reference: `HOST/REPO:TAG`, `HOST/REPO@DIGEST`, or for a layout `REPO:TAG`. */
  reference: string;
  digest: Digest;
  mediaType: string;
  platforms: string[];
  tagged: boolean;
}

export interface CopyResult {
  target: string;
  images: CopiedImage[];
  /** Counts over blob × repository pairs, and the bytes actually uploaded. */
  blobs: TransferCounts;
  manifests: number;
  transfers: BlobTransfer[];
}

/**
 * Copy images into a registry or a layout.
 *
 * @throws USAGE (no images, colliding names), INPUT_INVALID (a name that does not map), the
 *   sources' errors while resolving (nothing written then), and the sink's while copying; no tag is
 *   written unless the failure comes in the tag phase itself (then `details.tags` lists which moved)
 */
export async function copyImages(opts: CopyImagesOptions): Promise<CopyResult> {
  const progress = opts.onProgress ?? silent;
  if (opts.images.length === 0) throw new AirlockError('USAGE', 'no images to copy', { hint: 'name images as arguments or pass -f images.yaml' });
  checkImageNames(opts.images);
  const signal = opts.signal === undefined ? {} : { signal: opts.signal };
  // Before anything is fetched: a target that does not answer or refuses the credentials.
  await opts.sink.reachability?.ping(signal);
  progress({ kind: 'phase', phase: 'resolving manifests', items: opts.images.length, noun: 'image' });
  const resolved = await resolveAll(opts.images, {
    ...signal,
    onResolved: (r) => progress({ kind: 'image', name: r.name, digest: r.top.digest, detail: r.platforms.join(',') || undefined }),
  });
  const mappings = mapImages(
    resolved.map((r) => ({ name: r.name, digest: r.top.digest })),
    opts.target,
    { stripHost: opts.stripHost === true },
  );
  checkReservedNames(mappings, opts.target);
  const plan = planCopy(resolved, mappings);
  const target = opts.target;
  const { transfers, manifests } = await copyPlanned(plan, {
    sink: opts.sink,
    concurrency: opts.concurrency ?? DEFAULT_IMPORT_CONCURRENCY,
    prefix: target.kind === 'registry' ? target.prefix : '',
    operation: 'copy',
    nameOf: (job) => targetName(target, job.repository, job.reference),
    integrity: {
      digest: 'digest',
      hint: 'the source serves content that does not match its digest: nothing was tagged; try again, and report it to the source if it persists',
    },
    // Every blob of a direct copy has a source: none can be missing.
    missing: (absent) => new AirlockError('INTERNAL', `copy plan without a source for blob ${absent[0]?.unit.desc.digest}`),
    onProgress: progress,
    ...signal,
    ...(opts.retry === undefined ? {} : { retry: opts.retry }),
  });
  return {
    target: describeTarget(target),
    images: resolved.map((r, i) => ({
      name: r.name,
      source: r.sourceRef,
      reference: mappings[i]!.reference,
      digest: r.top.digest,
      mediaType: r.top.mediaType,
      platforms: [...new Set(r.platforms)],
      tagged: mappings[i]!.tag !== undefined,
    })),
    blobs: countTransfers(transfers, plan.blobs.length),
    manifests,
    transfers,
  };
}
