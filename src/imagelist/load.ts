/**
 * Loading an image list file (`-f images.yaml`): read, parse YAML (which also reads JSON),
 * validate against `schemas/images.schema.json`, then parse every reference, platform, expression
 * and range. Any problem is one INPUT_INVALID line naming the file, line and entry.
 */
import { LineCounter, parseDocument, type Document } from 'yaml';
import { AirlockError } from '../errors.js';
import { readSmallFile } from '../fs/small-file.js';
import type { Platform } from '../oci/descriptor.js';
import {
  combinedProblems,
  entryFromRaw,
  everyProblem,
  MAX_LIST_PROBLEMS,
  parsePlatforms,
  type DataPath,
  type FileLocator,
  type ImageList,
  type RawEntry,
} from './image-list.js';
import { describeSchemaError, validateImageList } from './schema.js';

/**
 * Largest image list read. A list of thousands of images is well under 1 MiB; the cap stops a
 * wrong path (an image tarball, a bundle) from being read into memory and parsed.
 */
export const MAX_IMAGE_LIST_BYTES = 4 * 1024 * 1024;

/** Aliases YAML may expand; more is a "billion laughs" document, not an image list. */
const MAX_ALIAS_COUNT = 100;

/** The image list as the schema describes it. */
interface RawImageList {
  version: 1;
  platforms?: string[];
  images: RawEntry[];
}

/**
 * Load and check an image list file, YAML or JSON.
 *
 * @param path the file, as the operator gave it; messages name it the same way.
 * @throws AirlockError `INPUT_INVALID` naming the file, line and entry, e.g.
 *   `images.yaml:9: images[1].tags.semver: "three" is not a valid semver range`; `IO` when the
 *   file cannot be read.
 * @example
 * const list = await loadImageList('samples/images.yaml');
 * for (const entry of list.entries) console.log(entry.source, entry.ref);
 */
export async function loadImageList(path: string): Promise<ImageList> {
  const text = await readListFile(path);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  const file = locator(path, doc, lineCounter);

  const parseError = doc.errors[0];
  if (parseError !== undefined) {
    const line = parseError.linePos?.[0].line;
    const reason =
      parseError.code === 'MULTIPLE_DOCS'
        ? 'more than one document (---); put every image in one document'
        : parseError.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new AirlockError('INPUT_INVALID', `${path}${line === undefined ? '' : `:${line}`}: not valid YAML or JSON: ${reason}`, {
      subject: path,
      hint: 'fix the syntax; an image list is YAML (or JSON) with "version: 1" and an "images" list',
      cause: parseError,
      details: { file: path, ...(line === undefined ? {} : { line }) },
    });
  }

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // yaml throws here for an unknown alias, and for aliases that expand past the limit
    // (a "billion laughs" document).
    const excessive = err instanceof Error && err.message.includes('Excessive alias count');
    const reason = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    throw file.fail([], excessive ? `too many YAML alias expansions (more than ${MAX_ALIAS_COUNT})` : `not valid YAML: ${reason}`, {
      hint: 'write the list out without anchors and aliases',
      cause: err,
    });
  }
  const schema = checkSchema(data, file);
  if (schema.problems.length > 0) {
    // The entries the schema accepted are checked too, when the rest of the list is sound: every
    // problem of the file in one report, in file order.
    const problems = [...schema.problems];
    if (schema.entriesOnly) {
      const raw = data as RawImageList;
      raw.images.forEach((item, index) => {
        if (schema.bad.has(index)) return;
        try {
          entryFromRaw(item, index, undefined, file);
        } catch (err) {
          if (!(err instanceof AirlockError)) throw err;
          problems.push(err);
        }
      });
    }
    const line = (e: AirlockError): number => (typeof e.details?.line === 'number' ? e.details.line : 0);
    throw combinedProblems(problems.sort((a, b) => line(a) - line(b)));
  }
  const raw = data as RawImageList;

  const defaults: Platform[] | undefined = raw.platforms === undefined ? undefined : parsePlatforms(raw.platforms, ['platforms'], file);
  const entries = everyProblem(raw.images, (item, index) => entryFromRaw(item, index, defaults, file));
  return defaults === undefined ? { source: path, entries } : { source: path, platforms: defaults, entries };
}

/**
 * Every entry's schema problem, not only the first one's. The validator stops at the first problem
 * (its wording comes from that one error), so an entry found bad is set aside and the rest checked
 * again, up to {@link MAX_LIST_PROBLEMS} times; a problem outside the entries (the version, the
 * default platforms, the list itself) ends the search.
 */
function checkSchema(data: unknown, file: FileLocator): { problems: AirlockError[]; bad: Set<number>; entriesOnly: boolean } {
  const problems: AirlockError[] = [];
  const bad = new Set<number>();
  let doc = data;
  const validate = validateImageList;
  while (problems.length < MAX_LIST_PROBLEMS && !validate(doc)) {
    const error = validate.errors?.find((e) => e.keyword !== 'if');
    if (error === undefined) {
      problems.push(file.fail([], 'does not match the image list schema'));
      return { problems, bad, entriesOnly: false };
    }
    const { path: at, problem, hint } = describeSchemaError(error);
    problems.push(file.fail(at, problem, { hint }));
    const index = at[0] === 'images' && typeof at[1] === 'number' ? at[1] : undefined;
    const images = (doc as { images?: unknown } | null)?.images;
    const top = at[0];
    if (index === undefined && typeof top === 'string' && top !== 'images' && Array.isArray(images)) {
      // A problem in another top-level field (a bad default platform, an unknown field, a wrong
      // version): reported, then set aside so the rest of the file is checked as well.
      const { [top]: _, ...rest } = doc as Record<string, unknown>;
      doc = top === 'version' ? { ...rest, version: 1 } : rest;
      continue;
    }
    if (index === undefined || !Array.isArray(images)) return { problems, bad, entriesOnly: false };
    bad.add(index);
    // A placeholder no other entry can equal (uniqueItems) takes the bad entry's place.
    doc = { ...(doc as object), images: images.map((e, i) => (i === index ? `airlock.invalid/checked-${i}:0` : e)) };
  }
  return { problems, bad, entriesOnly: problems.length < MAX_LIST_PROBLEMS };
}

/** Read the file as UTF-8 text, refusing directories, huge files and binary content. */
async function readListFile(path: string): Promise<string> {
  const bytes = await readSmallFile(path, {
    maxBytes: MAX_IMAGE_LIST_BYTES,
    what: 'image list',
    hint: 'check the path: -f takes an image list (YAML or JSON), not an image or bundle',
  });
  const text = bytes.toString('utf8');
  if (text.includes('\u0000')) {
    throw new AirlockError('INPUT_INVALID', `${path}: binary content, not a YAML or JSON image list`, {
      subject: path,
      hint: 'check the path: -f takes an image list (YAML or JSON), not an image or bundle',
    });
  }
  return text;
}

/** Turns data paths into `file:line: images[2].tags` using the YAML document's source ranges. */
function locator(path: string, doc: Document, lineCounter: LineCounter): FileLocator {
  const lineOf = (at: DataPath): number | undefined => {
    // The deepest node that exists: a missing field is reported at its parent.
    for (let depth = at.length; depth >= 0; depth--) {
      const node: unknown = depth === 0 ? doc.contents : doc.getIn(at.slice(0, depth), true);
      const offset = (node as { range?: [number, number, number] } | null | undefined)?.range?.[0];
      if (offset !== undefined) return lineCounter.linePos(offset).line;
    }
    return undefined;
  };
  const locate = (at: DataPath): string => {
    const line = lineOf(at);
    const where = formatDataPath(at);
    return `${path}${line === undefined ? '' : `:${line}`}${where === '' ? '' : `: ${where}`}`;
  };
  return {
    locate,
    fail(at, problem, options = {}) {
      const line = lineOf(at);
      return new AirlockError('INPUT_INVALID', `${locate(at)}: ${problem}`, {
        subject: path,
        ...(options.hint === undefined ? {} : { hint: options.hint }),
        ...(options.cause === undefined ? {} : { cause: options.cause }),
        details: { file: path, ...(line === undefined ? {} : { line }), path: formatDataPath(at) },
      });
    },
  };
}

/** `['images', 2, 'tags']` → `images[2].tags`. */
export function formatDataPath(at: DataPath): string {
  return at.map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? part : `.${part}`)).join('');
}
