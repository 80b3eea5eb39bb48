/**
 * Tag filters: which tags of a repository to bundle. A filter is compiled once, when the image
 * list is loaded, so a bad regular expression or semver range fails before any network call.
 */
import semver from 'semver';
import { AirlockError } from '../errors.js';

/** A compiled tag filter. A tag is selected when it passes every filter that is set. */
export interface TagFilter {
  /** Keep tags this expression matches (anywhere in the tag; anchor with `^` and `$`). */
  include?: RegExp;
  /** Drop tags this expression matches. */
  exclude?: RegExp;
  /**
   * Keep tags that are semantic versions in this npm-style range, e.g. `>=3.0.0 <4.0.0`. A leading
   * `v` is ignored; non-semver tags are dropped; pre-releases only pass a range that names one.
   */
  semver?: string;
}

/** A tag filter as written in an image list: the same fields, as strings. */
export interface TagFilterSpec {
  include?: string;
  exclude?: string;
  semver?: string;
}

/** Names a field of the filter for error messages, e.g. `images.yaml:9: images[1].tags.semver`. */
export type FieldLocator = (field: keyof TagFilterSpec) => string;

/**
 * Compile a filter, checking every expression and range.
 *
 * @param where names each field in error messages; by default `tags.include` and so on.
 * @throws AirlockError `INPUT_INVALID` naming the field and the bad value.
 * @example
 * compileTagFilter({ semver: '>=3.0.0 <4.0.0', exclude: '-rc' });
 */
export function compileTagFilter(spec: TagFilterSpec, where: FieldLocator = (field) => `tags.${field}`): TagFilter {
  const filter: TagFilter = {};
  if (spec.include !== undefined) filter.include = compileRegExp(spec.include, where('include'));
  if (spec.exclude !== undefined) filter.exclude = compileRegExp(spec.exclude, where('exclude'));
  if (spec.semver !== undefined) {
    if (semver.validRange(spec.semver) === null) {
      throw new AirlockError('INPUT_INVALID', `${where('semver')}: ${JSON.stringify(spec.semver)} is not a valid semver range`, {
        subject: spec.semver,
        hint: 'write an npm semver range such as ">=3.0.0 <4.0.0", "^3" or "3.4.x"',
      });
    }
    filter.semver = spec.semver;
  }
  return filter;
}

/**
 * The tags that pass `filter`, without duplicates, in a deterministic order: ascending by semantic
 * version when the filter has a semver range (ties, such as `v3.4.1` and `3.4.1`, lexically), else
 * lexically (by UTF-16 code unit, independent of locale).
 *
 * @example
 * selectTags(['v3.3.0', '3.4.1', 'latest', 'v3.4.0-rc.1', 'v2.3.8'], { semver: '>=3.0.0 <4.0.0' });
 * // ['v3.3.0', '3.4.1']
 */
export function selectTags(tags: readonly string[], filter: TagFilter): string[] {
  const range = filter.semver;
  const selected = [...new Set(tags)].filter(
    (tag) =>
      (filter.include === undefined || tag.search(filter.include) !== -1) &&
      (filter.exclude === undefined || tag.search(filter.exclude) === -1) &&
      (range === undefined || inRange(tag, range)),
  );
  if (range === undefined) return selected.sort(compareLexically);
  return selected.sort((a, b) => semver.compare(tagVersion(a)!, tagVersion(b)!) || compareLexically(a, b));
}

/** The semantic version a tag names (`v3.3.0` and `3.3.0` name `3.3.0`), or undefined. */
function tagVersion(tag: string): string | undefined {
  // One optional "v", then the version itself (semver.valid alone would also take "=1.0.0", "vv1.0.0").
  const text = /^v?([0-9].*)$/.exec(tag)?.[1];
  return text === undefined ? undefined : (semver.valid(text) ?? undefined);
}

function inRange(tag: string, range: string): boolean {
  const version = tagVersion(tag);
  return version !== undefined && semver.satisfies(version, range);
}

function compareLexically(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compileRegExp(source: string, where: string): RegExp {
  try {
    return new RegExp(source);
  } catch (err) {
    // V8 says "Invalid regular expression: /(/: Unterminated group"; keep the last part.
    const reason = err instanceof Error ? (/: ([^:]+)$/.exec(err.message)?.[1] ?? err.message) : String(err);
    throw new AirlockError('INPUT_INVALID', `${where}: ${JSON.stringify(source)} is not a valid regular expression: ${reason}`, {
      subject: source,
      hint: 'write a JavaScript regular expression, e.g. "^v3\\." or "-rc"; escape "." "(" and "[" with "\\"',
      cause: err,
    });
  }
}
