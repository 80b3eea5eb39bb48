/**
 * The copy engine: a planned set of images from any Source (or several) to any {@link Sink}.
 *
 * The plan (built by the command from what it was asked to copy) lists every blob once with the
 * source to read it from and the sink repositories that need it, and per repository its manifests,
 * children before the indexes that list them, and its tags. The engine then, in order:
 * 1. checks the sink (writes nothing): what it holds, where a blob the source does not carry sits
 *    (through the sink's search, when it has one); the caller decides what a missing one means;
 * 2. prepares the sink (its first write, undone if the copy fails);
 * 3. blobs: skipped, mounted, or uploaded from the source, several at once (transfer.ts);
 * 4. manifests by digest, children first;
 * 5. the caller's last step before names move (an import records itself there);
 * 6. tags, last (tag-phase.ts): a pull never sees a tag pointing at missing content.
 * A rerun after any interruption skips what landed and ends in the same state.
 *
 * A sink that takes content only in one order (a bundle archive: `sink.inOrder`) is written by
 * {@link copyInOrder} instead: every blob and manifest in the plan's order, one at a time, the next
 * ones opened ahead at their sources.
 */
import { Readable } from 'node:stream';
import { AirlockError, isAirlockError } from '../errors.js';
import { integrityError, type Expected } from '../digest/verify.js';
import type { RawManifest } from '../oci/manifest.js';
import type { SearchReport, Sink, TagJob } from '../transport/types.js';
import { silent, type ProgressEvent, type ProgressListener } from './progress.js';
import { ImageProgress, type TrackedImage } from './image-progress.js';
import { count } from '../words.js';
import { runLimited } from './run-limited.js';
import { SMALL_REQUESTS_IN_FLIGHT } from './limits.js';
import {
  absentBlobs,
  checkBlobs,
  transferBlobs,
  type BlobRetry,
  type BlobTransfer,
  type BlobUnit,
  type CheckedBlob,
  type IntegrityWording,
} from './transfer.js';
import { applyTags } from './tag-phase.js';
import { BlobFeed } from './blob-feed.js';
import type { PlannedBlob } from './plan.js';

/** What one sink repository receives. */
export interface RepositoryPlan {
  repository: string;
  /** Manifests and indexes, each once, children before the indexes that list them. */
  manifests: RawManifest[];
  /** Tags applied last, after every manifest of every repository is in place. */
  tags: Array<{ tag: string; manifest: RawManifest; image: string }>;
  /** Top manifests of digest-only names (pushed by digest; a layout names them `repo@digest`). */
  untagged: Array<{ manifest: RawManifest; image: string }>;
}

/** Everything a copy writes. */
export interface CopyPlan {
  /** Config and layer blobs (manifests are pushed as manifests), in the order to read them. */
  blobs: BlobUnit[];
  repositories: RepositoryPlan[];
  /** Bytes of every blob the source carries in {@link blobs}, each counted once. */
  bytes: number;
}

export interface CopyOptions {
  sink: Sink;
  /** Large uploads in flight at once. */
  concurrency: number;
  /** Sink repositories outside this prefix are not the copy's (bounds the sink's search). */
  prefix: string;
  /** What the run is called in messages: `import`, `copy`. */
  operation: string;
  /** The name an operator would pull, for reports: `HOST/REPO:TAG`, `REPO@DIGEST`. */
  nameOf: (job: TagJob) => string;
  integrity: IntegrityWording;
  /** The error for blobs the source does not carry and the sink lacks (nothing is written then). */
  missing: (absent: CheckedBlob[], search: SearchReport | undefined) => Error;
  /** Runs after every manifest landed and before the first tag moves. */
  beforeTags?: () => Promise<void>;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  retry?: Partial<BlobRetry>;
}

export interface CopyOutcome {
  /** One record per blob and repository. */
  transfers: BlobTransfer[];
  /** Manifests stored (by digest or by their tag). */
  manifests: number;
}

/**
 * Copy `plan` from `opts.source` to `opts.sink`.
 *
 * @throws what `opts.missing` makes, before anything is written; the sink's and the source's
 *   errors; no tag is written unless the failure comes in the tag phase itself (tag-phase.ts)
 */
export async function copyPlanned(plan: CopyPlan, opts: CopyOptions): Promise<CopyOutcome> {
  const progress = opts.onProgress ?? silent;
  const signal = opts.signal === undefined ? {} : { signal: opts.signal };
  const { sink } = opts;
  const search = sink.mounting?.searchFor({ prefix: opts.prefix, known: plan.repositories.map((r) => r.repository), ...signal });
  const checked = await checkBlobs(plan.blobs, { sink, progress, ...(search === undefined ? {} : { search }), ...signal });
  const absent = absentBlobs(checked);
  if (absent.length > 0) throw opts.missing(absent, search?.report);
  await sink.preparation?.init();
  try {
    const transfers = await transferBlobs(checked, {
      sink,
      concurrency: opts.concurrency,
      progress,
      integrity: opts.integrity,
      ...signal,
      ...(opts.retry === undefined ? {} : { retry: opts.retry }),
    });
    const manifests = await pushManifests(plan, sink, progress, opts.signal);
    await opts.beforeTags?.();
    await applyTags(plan, { sink, nameOf: opts.nameOf, operation: opts.operation, onProgress: progress, ...signal });
    return { transfers, manifests };
  } catch (err) {
    await sink.preparation?.discard().catch(() => undefined);
    throw err;
  }
}

/**
 * Push every manifest by digest, children before indexes within each repository; a manifest only
 * tagged (no index in the repository needs it first) is stored by its tag push instead, one
 * request instead of two. Returns how many manifests are stored, by either push.
 */
async function pushManifests(plan: CopyPlan, sink: Sink, progress: ProgressListener, signal: AbortSignal | undefined): Promise<number> {
  const byDigest = plan.repositories.map((repo) => ({ repo, manifests: repo.manifests.filter((m) => !storedByTag(repo, m)) }));
  const total = byDigest.reduce((n, r) => n + r.manifests.length, 0);
  const all = plan.repositories.reduce((n, r) => n + r.manifests.length, 0);
  // The others go with their tags (one request each): the count says so, so that it adds up.
  const byTag = all - total;
  progress({ kind: 'phase', phase: 'pushing manifests', items: total, noun: 'manifest', ...(byTag === 0 ? {} : { detail: `${byTag} more with their tags` }) });
  await runLimited(byDigest, SMALL_REQUESTS_IN_FLIGHT, signal, async ({ repo, manifests }, jobSignal) => {
    for (const m of manifests) {
      await sink.putManifest(repo.repository, m, undefined, { signal: jobSignal });
      progress({ kind: 'blob', digest: m.digest, size: m.bytes.length });
    }
  });
  return all;
}

/** True when `m` is tagged in `repo` and no index of `repo` refers to it (so no push must precede). */
function storedByTag(repo: RepositoryPlan, m: RawManifest): boolean {
  if (!repo.tags.some((t) => t.manifest.digest === m.digest)) return false;
  return !repo.manifests.some((other) => other.kind === 'index' && other.parsed.manifests.some((d) => d.digest === m.digest));
}

export interface InOrderOptions {
  /** Blobs opened ahead of the one being written (default DEFAULT_OPEN_AHEAD; see blob-feed.ts). */
  openAhead?: number | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ProgressListener | undefined;
  /** Hears, before anything is copied, what the sink already held (when it held anything). */
  onHeld?: ((held: HeldContent) => void) | undefined;
  /** The images the items make up: each is reported complete (`image-done`) when its last item is in. */
  images?: readonly TrackedImage[] | undefined;
}

/** What an in-order sink already held: a prefix of the items, and maybe the start of the next. */
export interface HeldContent {
  items: number;
  /** Bytes of those items, and of the part of the next one. */
  bytes: number;
  /** The next item, held in part. */
  part?: { item: PlannedBlob; bytes: number };
}

/**
 * Copy `items` (blobs and manifests, each once) into a sink that takes them only in that order
 * (`sink.inOrder`: a bundle archive), one at a time, while the next ones are opened ahead at their
 * sources. What the sink already holds (a resumed archive) is skipped; a blob it holds in part is
 * read from where it stops. The sink verifies each blob as it writes it; a mismatch is reported in
 * the source's terms.
 *
 * @returns how many items, and how many of their bytes, the sink already held
 * @throws the sources' and the sink's errors; INTEGRITY naming the source for content that does not
 *   match its digest
 */
export async function copyInOrder(items: readonly PlannedBlob[], sink: Sink, opts: InOrderOptions = {}): Promise<{ held: number; heldBytes: number }> {
  const progress = opts.onProgress ?? silent;
  const inOrder = sink.inOrder;
  if (inOrder === undefined) throw new AirlockError('INTERNAL', `${sink.description} does not take content in order`);
  // What the sink holds is a prefix of the order (what an interrupted run wrote).
  let held = 0;
  while (held < items.length && (await sink.hasBlob(items[held]!.repository, items[held]!.desc))) held++;
  const next = items[held];
  const part = next === undefined ? 0 : inOrder.heldBytes(next.desc);
  const heldBytes = items.slice(0, held).reduce((n, b) => n + b.desc.size, 0) + part;
  if (held > 0 || part > 0)
    opts.onHeld?.({ items: held, bytes: heldBytes, ...(next === undefined || part === 0 ? {} : { part: { item: next, bytes: part } }) });
  const total = items.reduce((n, b) => n + b.desc.size, 0);
  const manifests = items.slice(held).filter((b) => b.manifest !== undefined).length;
  progress({
    kind: 'phase',
    phase: 'copying blobs',
    total: total - heldBytes,
    items: items.length - held - manifests,
    noun: 'blob',
    detail: count(manifests, 'manifest'),
  });
  const tracker = new ImageProgress(opts.images ?? [], new Set(items.map((b) => b.desc.digest)));
  const landed = (item: PlannedBlob): void => {
    for (const image of tracker.landed(item.desc.digest)) progress(imageDone(image));
  };
  for (const image of tracker.alreadyComplete()) progress(imageDone(image));
  const onBytes = (n: number): void => progress({ kind: 'bytes', bytes: n });
  const offsets = new Map(next === undefined || part === 0 ? [] : [[next, part] as const]);
  const feed = new BlobFeed(
    items.slice(held).filter((b) => b.bytes === undefined),
    opts.openAhead,
    opts.signal,
    offsets,
    onBytes,
  );
  const call = opts.signal === undefined ? {} : { signal: opts.signal };
  try {
    for (const [i, item] of items.entries()) {
      opts.signal?.throwIfAborted();
      const image = tracker.imageOf(item.desc.digest);
      const started = { kind: 'blob', digest: item.desc.digest, size: item.desc.size, ...(image === undefined ? {} : { image }) } as const;
      if (i < held) {
        progress({ ...started, skipped: true });
        landed(item);
        continue;
      }
      progress(started);
      if (item.manifest !== undefined) {
        await sink.putManifest(item.repository, item.manifest, undefined, call);
        onBytes(item.desc.size);
        landed(item);
        continue;
      }
      if (item.bytes !== undefined) {
        await sink.putBlob(item.repository, item.desc, Readable.from([item.bytes]), call);
        onBytes(item.desc.size);
        landed(item);
        continue;
      }
      const opened = await feed.next();
      if (opened?.blob !== item) throw new AirlockError('INTERNAL', `blob feed out of order at ${item.desc.digest}`);
      try {
        await sink.putBlob(item.repository, item.desc, opened.body, call);
      } catch (err) {
        throw inSourceTerms(err, item, opened.body);
      } finally {
        opened.body.destroy();
      }
      landed(item);
    }
  } catch (err) {
    await feed.close();
    throw err;
  }
  return { held, heldBytes };
}

function imageDone(image: TrackedImage): ProgressEvent {
  return {
    kind: 'image-done',
    name: image.name,
    action: 'stored',
    ...(image.detail === undefined ? {} : { detail: image.detail }),
    ...(image.bytes === undefined ? {} : { bytes: image.bytes }),
  };
}

/** A sink's refusal of content (INTEGRITY, the body itself fine), restated naming where it came from. */
function inSourceTerms(err: unknown, item: PlannedBlob, body: Readable): unknown {
  if (!isAirlockError(err, 'INTEGRITY') || body.errored !== null) return err;
  const what = `blob ${item.desc.digest} of ${item.source.description}/${item.repository}`;
  const details = err.details as { expected?: Expected; got?: { digest?: string; size: number } } | undefined;
  if (details?.expected === undefined || details.got === undefined)
    return new AirlockError('INTEGRITY', `${what}: ${err.message}`, { subject: item.desc.digest, cause: err });
  const restated = integrityError(what, details.expected, details.got);
  return new AirlockError('INTEGRITY', restated.message, {
    subject: item.desc.digest,
    ...(restated.details === undefined ? {} : { details: restated.details }),
    cause: err,
  });
}
