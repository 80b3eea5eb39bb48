/**
 * The last phase of an import: set the tags (and, in a layout, the digest-only names).
 *
 * Every manifest is in place before the first tag moves, so a tag never points at incomplete
 * content. A registry takes one PUT per tag and has no transaction, so this phase can fail part-way:
 * the first failure stops new tags from starting, the ones already in flight are let finish (a
 * tag PUT is small), and the error then lists exactly which tags moved and which did not. A rerun
 * sets them all. A sink that can set every name at once (a layout's single `index.json` write) is
 * all-or-nothing instead.
 */
import { AirlockError, isAirlockError } from '../errors.js';
import { silent, type ProgressListener } from '../copy/progress.js';
import { runLimited } from '../copy/run-limited.js';
import { canTagAtOnce, type Sink, type TagJob } from '../transport/types.js';
import { SMALL_REQUESTS_IN_FLIGHT } from './import-limit.js';
import type { ImportPlan } from './import-plan.js';
import type { ImportTarget } from './import-names.js';

export interface TagPhaseOptions {
  sink: Sink;
  target: ImportTarget;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
}

/** How the tags stand after a failure part-way: `HOST/REPO:TAG` (or `REPO:TAG` in a layout) each. */
export interface TagOutcome {
  moved: string[];
  notMoved: string[];
}

/** The name an operator would pull: `HOST/REPO:TAG`, or `REPO:TAG` / `REPO@DIGEST` in a layout. */
function targetName(target: ImportTarget, job: TagJob): string {
  const sep = job.reference.startsWith('sha256:') ? '@' : ':';
  const name = `${job.repository}${sep}${job.reference}`;
  return target.kind === 'layout' ? name : `${target.host}/${name}`;
}

/**
 * Tag last. A layout also names digest-only images (`repo@sha256:…`) in its index.json, since a
 * manifest a layout does not name cannot be found by tools that read it.
 *
 * @throws the first failure's code (REGISTRY, NETWORK, AUTH, INTERRUPTED …), its message followed by
 *   how many tags moved, and `details.tags` ({@link TagOutcome}) when the phase stopped part-way
 */
export async function applyTags(plan: ImportPlan, opts: TagPhaseOptions): Promise<void> {
  const progress = opts.onProgress ?? silent;
  const layout = opts.target.kind === 'layout';
  const jobs: TagJob[] = plan.repositories.flatMap((repo) => [
    ...repo.tags.map((t) => ({ repository: repo.repository, manifest: t.manifest, reference: t.tag })),
    ...(layout ? repo.untagged.map((u) => ({ repository: repo.repository, manifest: u.manifest, reference: u.manifest.digest as string })) : []),
  ]);
  progress({ kind: 'phase', phase: 'tagging', items: jobs.length });
  const sink = opts.sink;
  // All names in one write: index.json lists them in the same order every run.
  if (canTagAtOnce(sink)) return sink.putTags(jobs, opts.signal === undefined ? {} : { signal: opts.signal });

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
    } catch (err) {
      failure ??= { err };
    }
  });
  if (failure !== undefined) throw tagPhaseError(failure.err, jobs, moved, opts.target);
}

function tagPhaseError(err: unknown, jobs: TagJob[], moved: Set<TagJob>, target: ImportTarget): AirlockError {
  const tags: TagOutcome = {
    moved: jobs.filter((j) => moved.has(j)).map((j) => targetName(target, j)),
    notMoved: jobs.filter((j) => !moved.has(j)).map((j) => targetName(target, j)),
  };
  const aborted = (err as Error | undefined)?.name === 'AbortError' || isAirlockError(err, 'INTERRUPTED');
  const base = isAirlockError(err) ? err : undefined;
  const what = aborted ? 'import interrupted while tagging' : (base?.message ?? `tagging failed: ${String((err as Error | undefined)?.message ?? err)}`);
  const summary = tags.moved.length === 0 ? 'no tag was moved' : `${tags.moved.length} of ${jobs.length} tags moved (each to complete content), ${tags.notMoved.length} not`;
  return new AirlockError(aborted ? 'INTERRUPTED' : (base?.code ?? 'INTERNAL'), `${what}; ${summary}`, {
    ...(base?.subject === undefined ? {} : { subject: base.subject }),
    hint: `${base?.hint === undefined || aborted ? '' : `${base.hint}; then `}run the same command again: it sets the remaining tags (blobs and manifests already landed are skipped)`,
    details: { ...base?.details, tags },
    cause: err,
  });
}
