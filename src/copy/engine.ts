/**
 * The copy engine: a planned set of images from any Source (or several) to any {@link Sink}.
 *
 * The plan (built by the command from what it was asked to copy) lists every blob once with the
 * source to read it from and the sink repositories that need it, and per repository its manifests, children before the indexes that
 * list them, and its tags. The engine then, in order:
 * 1. checks the sink (writes nothing): what it holds, where a blob the source does not carry sits
 *    (through the sink's search, when it has one); the caller decides what a missing one means;
 * 2. prepares the sink (its first write, undone if the copy fails);
 * 3. blobs: skipped, mounted, or uploaded from the source, several at once (transfer.ts);
 * 4. manifests by digest, children first;
 * 5. the caller's last step before names move (an import records itself there);
 * 6. tags, last (tag-phase.ts): a pull never sees a tag pointing at missing content.
 * A rerun after any interruption skips what landed and ends in the same state.
 */
import type { RawManifest } from '../oci/manifest.js';
import type { SearchReport, Sink, TagJob } from '../transport/types.js';
import { silent, type ProgressListener } from './progress.js';
import { runLimited } from './run-limited.js';
import { SMALL_REQUESTS_IN_FLIGHT } from './limits.js';
import { absentBlobs, checkBlobs, transferBlobs, type BlobRetry, type BlobTransfer, type BlobUnit, type CheckedBlob, type IntegrityWording } from './transfer.js';
import { applyTags } from './tag-phase.js';

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
  progress({ kind: 'phase', phase: 'pushing manifests', items: total });
  await runLimited(byDigest, SMALL_REQUESTS_IN_FLIGHT, signal, async ({ repo, manifests }, jobSignal) => {
    for (const m of manifests) {
      await sink.putManifest(repo.repository, m, undefined, { signal: jobSignal });
      progress({ kind: 'blob', digest: m.digest, size: m.bytes.length });
    }
  });
  return plan.repositories.reduce((n, r) => n + r.manifests.length, 0);
}

/** True when `m` is tagged in `repo` and no index of `repo` refers to it (so no push must precede). */
function storedByTag(repo: RepositoryPlan, m: RawManifest): boolean {
  if (!repo.tags.some((t) => t.manifest.digest === m.digest)) return false;
  return !repo.manifests.some((other) => other.kind === 'index' && other.parsed.manifests.some((d) => d.digest === m.digest));
}
