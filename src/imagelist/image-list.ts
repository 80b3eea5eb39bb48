/**
 * The images to bundle: the parsed form of an image list file or of references given on the
 * command line. Every reference, platform, expression and range in it has been checked.
 */
import { AirlockError } from '../errors.js';
import { parsePlatform, type Platform } from '../oci/descriptor.js';
import { parseAnyReference, parseReference, type AnyReference, type ImageReference } from '../ref/index.js';
import { compileTagFilter, type FieldLocator, type TagFilter, type TagFilterSpec } from './tag-filter.js';

/** One image, or one repository whose tags a filter selects. */
export interface ImageListEntry {
  /**
   * The image or repository. A registry reference with a {@link tagFilter} has no tag and no
   * digest; without one it has a tag (`latest` by default), a digest, or both. A layout
   * reference without a name stands for every named image in the layout.
   */
  ref: AnyReference;
  /** Present when the entry is a whole registry repository filtered by tag (never for layouts). */
  tagFilter?: TagFilter;
  /** Platforms to bundle; absent means every platform the image has. */
  platforms?: Platform[];
  /**
   * The name to record an `oci:DIR:NAME` image under (`as:` in the list), with a tag and no digest;
   * absent: the layout's own name.
   */
  as?: ImageReference;
  /** Where the entry came from, for messages: `images.yaml:7: images[2]` or `command line`. */
  source: string;
}

/** A parsed image list. */
export interface ImageList {
  /** The file it was loaded from, or `command line`. */
  source: string;
  /** The file-level default platforms, already applied to every entry that has none. */
  platforms?: Platform[];
  entries: ImageListEntry[];
}

/** {@link ImageListEntry.source} of references given as arguments. */
export const COMMAND_LINE = 'command line';

/** Options for {@link imageListFromRefs}. */
export interface FromRefsOptions {
  /** Platforms for every entry (e.g. from `--platform`); absent means all platforms. */
  platforms?: Platform[];
}

/**
 * Build an image list from references typed on the command line. An empty `texts` gives an
 * empty list; the caller decides whether that is an error.
 *
 * @throws AirlockError `REF_INVALID` (or `UNSUPPORTED` for a non-sha256 digest) naming the reference.
 * @example
 * imageListFromRefs(['busybox:musl', 'oci:./layout:v1'], { platforms: [{ os: 'linux', architecture: 'amd64' }] });
 */
export function imageListFromRefs(texts: readonly string[], options: FromRefsOptions = {}): ImageList {
  const entries = everyProblem(texts, (text): ImageListEntry => {
    const entry: ImageListEntry = { ref: parseAnyReference(text), source: COMMAND_LINE };
    if (options.platforms !== undefined) entry.platforms = [...options.platforms];
    return entry;
  });
  return options.platforms === undefined ? { source: COMMAND_LINE, entries } : { source: COMMAND_LINE, platforms: [...options.platforms], entries };
}

/** Problems named one by one in one error at most; more are counted. */
export const MAX_LIST_PROBLEMS = 50;

/**
 * `parse` applied to every item, all of them checked even when some fail, so that an operator
 * fixes every bad entry in one go. One failure is thrown as it is; several become one error with
 * the first one's code, message and hint, `(and N more)`, and each in `details.problems` (the CLI
 * prints them one a line).
 */
export function everyProblem<T, R>(items: readonly T[], parse: (item: T, index: number) => R): R[] {
  const out: R[] = [];
  const failed: AirlockError[] = [];
  items.forEach((item, i) => {
    try {
      out.push(parse(item, i));
    } catch (err) {
      if (!(err instanceof AirlockError)) throw err;
      failed.push(err);
    }
  });
  if (failed.length > 0) throw combinedProblems(failed);
  return out;
}

/** One error for several: see {@link everyProblem}. */
export function combinedProblems(failed: readonly AirlockError[]): AirlockError {
  const first = failed[0]!;
  if (failed.length === 1) return first;
  const kept = failed.slice(0, MAX_LIST_PROBLEMS);
  return new AirlockError(first.code, `${first.message} (and ${failed.length - 1} more)`, {
    ...(first.subject === undefined ? {} : { subject: first.subject }),
    ...(first.hint === undefined ? {} : { hint: first.hint }),
    details: {
      problems: kept.map((e) => ({ code: e.code, message: e.message, ...(e.subject === undefined ? {} : { subject: e.subject }) })),
      ...(failed.length > kept.length ? { omittedProblems: failed.length - kept.length } : {}),
    },
    cause: first,
  });
}

/** An image list entry as written in the file, after schema validation. */
export type RawEntry = string | { ref: string; tags?: TagFilterSpec; platforms?: string[]; as?: string };

/** A path into the file's data, e.g. `['images', 2, 'tags', 'semver']`. */
export type DataPath = ReadonlyArray<string | number>;

/** Where things are in the file being loaded, for messages. */
export interface FileLocator {
  /** `images.yaml:7: images[2].tags.semver` (the line when known). */
  locate(path: DataPath): string;
  /** An INPUT_INVALID error at `path`. */
  fail(path: DataPath, problem: string, options?: { hint?: string | undefined; cause?: unknown }): AirlockError;
}

/** Parse one validated entry of an image list file into an {@link ImageListEntry}. */
export function entryFromRaw(raw: RawEntry, index: number, defaults: Platform[] | undefined, file: FileLocator): ImageListEntry {
  const at: DataPath = ['images', index];
  const spec = typeof raw === 'string' ? { ref: raw } : raw;
  const refPath = typeof raw === 'string' ? at : [...at, 'ref'];
  const filtered = spec.tags !== undefined;

  let ref: AnyReference;
  try {
    ref = parseAnyReference(spec.ref, { defaultTag: !filtered });
  } catch (err) {
    if (!(err instanceof AirlockError)) throw err;
    throw file.fail(refPath, err.message, { hint: err.hint, cause: err });
  }
  const entry: ImageListEntry = { ref, source: file.locate(at) };

  if (spec.tags !== undefined) {
    if (ref.kind === 'layout') {
      throw file.fail([...at, 'tags'], 'a tags filter applies to registry repositories, not to OCI layouts', {
        hint: 'name one image as oci:DIR:NAME, or write oci:DIR for every named image in the layout',
      });
    }
    if (ref.ref.tag !== undefined || ref.ref.digest !== undefined) {
      throw file.fail(refPath, `${JSON.stringify(spec.ref)} names a tag or digest, but the entry also has a tags filter`, {
        hint: 'for a single image remove "tags"; for a repository remove the tag or digest from "ref"',
      });
    }
    const tagsPath = [...at, 'tags'];
    const where: FieldLocator = (field) => file.locate([...tagsPath, field]);
    entry.tagFilter = compileTagFilter(spec.tags, where);
  }

  if (typeof raw !== 'string' && raw.as !== undefined) entry.as = parseAs(raw.as, ref, [...at, 'as'], file);

  if (typeof raw !== 'string' && raw.platforms !== undefined) {
    entry.platforms = parsePlatforms(raw.platforms, [...at, 'platforms'], file);
  } else if (defaults !== undefined) {
    entry.platforms = [...defaults];
  }
  return entry;
}

/**
 * Parse `as:`, the name one image of an OCI layout is recorded under: a registry reference,
 * normalised as Docker does (`busybox:musl` is `docker.io/library/busybox:musl`), by tag.
 */
function parseAs(text: string, ref: AnyReference, path: DataPath, file: FileLocator): ImageReference {
  if (ref.kind !== 'layout' || ref.name === undefined) {
    throw file.fail(path, '"as" renames one image of an OCI layout', {
      hint: ref.kind === 'layout' ? 'name the image: ref: oci:DIR:NAME' : 'registry images keep their own name; remove "as"',
    });
  }
  let parsed: ImageReference;
  try {
    parsed = parseReference(text);
  } catch (err) {
    if (!(err instanceof AirlockError)) throw err;
    throw file.fail(path, err.message, { hint: err.hint, cause: err });
  }
  if (parsed.digest !== undefined) {
    throw file.fail(path, `${JSON.stringify(text)} names a digest`, {
      hint: "give the name by tag, e.g. docker.io/library/busybox:musl; the digest is the layout's",
    });
  }
  return parsed;
}

/** Parse a validated `platforms` list. */
export function parsePlatforms(texts: readonly string[], path: DataPath, file: FileLocator): Platform[] {
  return texts.map((text, i) => {
    const platform = parsePlatform(text);
    if (platform === undefined) throw file.fail([...path, i], platformProblem(text), { hint: PLATFORM_HINT });
    return platform;
  });
}

/** Why `text` is not a platform, for messages. */
export function platformProblem(text: string): string {
  return `${JSON.stringify(text)} is not a platform`;
}

/** How to write a platform. */
export const PLATFORM_HINT = 'write os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm64/v8';
