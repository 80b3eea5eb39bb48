/**
 * `airlock tags`: the tags of one repository (a registry's, or the names of an OCI layout), and
 * which of them a tag filter of the image list would select, chosen exactly as `bundle create`
 * chooses them (tags outside the tag grammar are skipped, then `selectTags`).
 */
import { AirlockError } from '../errors.js';
import { compileTagFilter, selectTags, type TagFilter, type TagFilterSpec } from '../imagelist/tag-filter.js';
import { formatLayoutReference, isValidTag, parseAnyReference, repositoryName, type AnyReference } from '../ref/index.js';
import type { CallOptions, Source } from '../transport/types.js';

/** What to list: a repository and the endpoint that holds it. */
export interface TagsTarget {
  /** A registry repository (no tag, no digest) or a layout, as {@link parseTagsReference} gives it. */
  ref: AnyReference;
  source: Source;
}

export interface TagsResult {
  /** `quay.io/coreos/etcd`, or `oci:DIR[:NAME]`. */
  repository: string;
  /** Every tag listed, in lexical order. */
  tags: string[];
  /** What the filter selects, in the order `bundle create` would take them (every valid tag without a filter). */
  selected: string[];
  /** Listed tags outside the tag grammar: `bundle create` skips them too. */
  invalid: string[];
  /** Whether a filter was given. */
  filtered: boolean;
}

/**
 * Parse the repository `airlock tags` lists: `quay.io/coreos/etcd` (or `docker://…`), or
 * `oci:DIR[:NAME]`. A tag or digest is refused: it names one image, not a repository.
 */
export function parseTagsReference(text: string): AnyReference {
  const ref = parseAnyReference(text, { defaultTag: false });
  if (ref.kind === 'registry' && (ref.ref.tag !== undefined || ref.ref.digest !== undefined)) {
    const repository = repositoryName(ref.ref);
    throw new AirlockError('USAGE', `${text} names an image, not a repository`, {
      subject: text,
      hint: `write the repository alone: airlock tags ${repository}`,
    });
  }
  return ref;
}

/**
 * Compile `--semver`, `--include`, `--exclude` as the image list's `tags:` fields; undefined when
 * none is given.
 *
 * @throws AirlockError `USAGE` naming the flag and the bad value
 */
export function tagFilterFromFlags(spec: TagFilterSpec): TagFilter | undefined {
  if (spec.semver === undefined && spec.include === undefined && spec.exclude === undefined) return undefined;
  try {
    return compileTagFilter(spec, (field) => `--${field}`);
  } catch (err) {
    if (!(err instanceof AirlockError)) throw err;
    throw new AirlockError('USAGE', err.message, { ...(err.hint === undefined ? {} : { hint: err.hint }), cause: err });
  }
}

/** List the tags of `target` and select with `filter`. */
export async function listRepositoryTags(target: TagsTarget, filter: TagFilter | undefined, opts: CallOptions = {}): Promise<TagsResult> {
  const { ref } = target;
  const repository = ref.kind === 'registry' ? ref.ref.repository : (ref.name ?? '');
  const listed = await target.source.listTags(repository, opts);
  const tags = [...new Set(listed)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const valid = tags.filter((t) => isValidTag(t));
  return {
    repository: ref.kind === 'registry' ? repositoryName(ref.ref) : formatLayoutReference(ref),
    tags,
    selected: selectTags(valid, filter ?? {}),
    invalid: tags.filter((t) => !isValidTag(t)),
    filtered: filter !== undefined,
  };
}
