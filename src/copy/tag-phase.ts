/**
 * The last phase of a copy: set the tags (and, in a layout, the digest-only names).
 *
 * Every manifest is in place before the first tag moves, so a tag never points at incomplete
 * content. A registry takes one PUT per tag and has no transaction, so this phase can fail part-way:
 * the first failure stops new tags from starting, the ones already in flight are let finish (a
 * tag PUT is small), and the error then lists exactly which tags moved and which did not. A rerun
 * sets them all. A sink that can set every name at once (a layout's single `index.json` write) is
 * all-or-nothing instead.
 */
import { AirlockError, isAirlockError } from '../errors.js';
import { silent, type ProgressListener } from './progress.js';
import { runLimited } from './run-limited.js';
import type { Sink, TagJob } from '../transport/types.js';
import { SMALL_REQUESTS_IN_FLIGHT } from './limits.js';
import type { CopyPlan } from './engine.js';

export interface TagPhaseOptions {
  sink: Sink;
  /** The name an operator would pull, for the report of a failure: `HOST/REPO:TAG`, `REPO@DIGEST`. */
  nameOf: (job: TagJob) => string;
  /** What the run is called in messages: `import`, `copy`. */
  operation: string;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
}

/** How the tags stand after a failure part-way: `HOST/REPO:TAG` (or `REPO:TAG` in a layout) each. */
export interface TagOutcome {
  moved: string[];
  notMoved: string[];
}

/**
 * Tag last. A layout also names digest-only images (`repo@sha256:…`) in its index.json, since a
 * manifest a layout does not name cannot be found by tools that read it.
 *
 * @throws the first failure's code (REGISTRY, NETWORK, AUTH, INTERRUPTED …), its message followed by
 *   how many tags moved, and `details.tags` ({@link TagOutcome}) when the phase stopped part-way
 */
export async function applyTags(plan: CopyPlan, opts: TagPhaseOptions): Promise<void> {
  const progress = opts.onProgress ?? silent;
  const naming = opts.sink.naming;
  const layout = naming !== undefined;
  const jobs: TagJob[] = plan.repositories.flatMap((repo) => [
    ...repo.tags.map((t) => ({ repository: repo.repository, manifest: t.manifest, reference: t.tag })),
    ...(layout ? repo.untagged.map((u) => ({ repository: repo.repository, manifest: u.manifest, reference: u.manifest.digest as string })) : []),
  ]);
  progress({ kind: 'phase', phase: 'tagging', items: jobs.length, noun: layout ? 'name' : 'tag' });
  const sink = opts.sink;
  const tagged = (job: TagJob): void => progress({ kind: 'image-done', name: opts.nameOf(job), action: 'tagged' });
  // All names in one write: index.json lists them in the same order every run.
  if (naming !== undefined) {
    await naming.putTags(jobs, opts.signal === undefined ? {} : { signal: opts.signal });
    for (const job of jobs) tagged(job);
    return;
  }

  const moved = new Set<TagJob>();
  let failure: { err: unknown } | undefined;
  // runLimited would abort the PUTs in flight at the first failure, and then nobody could say
  // whether they moved; each job records its own outcome and never throws.
  await runLimited(jobs, SMALL_REQUESTS_IN_FLIGHT, undefined, async (job) => {
    if (failure !== undefined) return;
    try {
      opts.signal?.throwIfAborted();
      await sink.putManifest(job.repository, job.manifest, job.reference, opts.signal === undefined ? {} : { signal: opts.signal });
      moved.add(job);
      tagged(job);
    } catch (err) {
      failure ??= { err };
    }
  });
  if (failure !== undefined) throw tagPhaseError(failure.err, jobs, moved, opts);
}

function tagPhaseError(err: unknown, jobs: TagJob[], moved: Set<TagJob>, { nameOf, operation }: TagPhaseOptions): AirlockError {
  const tags: TagOutcome = {
    moved: jobs.filter((j) => moved.has(j)).map(nameOf),
    notMoved: jobs.filter((j) => !moved.has(j)).map(nameOf),
  };
  const aborted = (err as Error | undefined)?.name === 'AbortError' || isAirlockError(err, 'INTERRUPTED');
  const base = isAirlockError(err) ? err : undefined;
  const what = aborted ? `${operation} interrupted while tagging` : (base?.message ?? `tagging failed: ${String((err as Error | undefined)?.message ?? err)}`);
  const summary =
    tags.moved.length === 0 ? 'no tag was moved' : `${tags.moved.length} of ${jobs.length} tags moved (each to complete content), ${tags.notMoved.length} not`;
  return new AirlockError(aborted ? 'INTERRUPTED' : (base?.code ?? 'INTERNAL'), `${what}; ${summary}`, {
    ...(base?.subject === undefined ? {} : { subject: base.subject }),
    hint: `${base?.hint === undefined || aborted ? '' : `${base.hint}; then `}run the same command again: it sets the remaining tags (blobs and manifests already landed are skipped)`,
    details: { ...base?.details, tags },
    cause: err,
  });
}
