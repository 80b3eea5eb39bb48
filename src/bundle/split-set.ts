/**
 * Split sets: a bundle written as parts `NAME.part-001`, `NAME.part-002`, … (`bundle create
 * --split SIZE`) so that it fits media with a file-size limit. Joined in name order (`cat
 * NAME.part-* > NAME`) the parts are exactly the unsplit archive; readers take the parts as they
 * are, through {@link PartedFile}, as one random-access file.
 *
 * What a set should hold comes from its `.sha256` sidecar (written by create beside the parts): it
 * lists every part with its sha256, so the number of parts is known and a missing last part is
 * named, not read as a truncated bundle. The sidecar is not trusted (anyone who can change a part
 * can change it too): it only names which part to copy again. What makes the content trusted is
 * the signed manifest's digests, checked as always. Without a sidecar the set is what is on disk:
 * numbered from 1 without gaps, every part but the last of one size.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { AirlockError, fromFsError } from '../errors.js';
import { readSmallFile } from '../fs/small-file.js';

/** Digits of a part number, at least: `part-001`. More when a set has over 999 parts. */
export const PART_DIGITS = 3;

/** Smallest `--split` accepted: 64 KiB. Smaller parts only multiply files (and open file handles). */
export const MIN_SPLIT_SIZE = 64 << 10;

/**
 * Largest split set's `.sha256` sidecar read: 32 MiB. A line per part of at most 322 bytes (a
 * 255-byte name): the 100,000 parts a receipt may list. 1 MiB refused the sidecar create writes for
 * ~10,000 parts (64 KiB parts of a 700 MB bundle), and with it the set.
 */
export const MAX_SIDECAR_BYTES = 32 << 20;

const PART_NAME = /^(.+)\.part-(\d{3,})$/;

/** One file of a set. */
export interface SplitPart {
  /** 1-based part number. */
  index: number;
  path: string;
  /** Its size on disk. */
  size: number;
}

/** A set of parts that together are one bundle file. */
export interface SplitSet {
  /** The bundle's name in messages: `DIR/NAME` (no such file needs to exist). */
  path: string;
  /** The parts in order, 1 to N. */
  parts: readonly SplitPart[];
  /** Sum of the part sizes: the size of the joined archive. */
  size: number;
  /** The sidecar the set was checked against, if there was one. */
  sidecar?: string | undefined;
  /** The sidecar's expectations, when it had them. */
  expected?: SidecarLines | undefined;
}

/** A bundle file as the readers take it: one path, or a set of parts. */
export type ArchiveLocation = string | SplitSet;

/** The name of `loc` for messages. */
export function locationName(loc: ArchiveLocation): string {
  return typeof loc === 'string' ? loc : loc.path;
}

/** `BASE.part-001` for part 1; `width` digits at least ({@link PART_DIGITS}). */
export function partName(base: string, index: number, width = PART_DIGITS): string {
  return `${base}.part-${String(index).padStart(width, '0')}`;
}

/** Digits the part numbers of a set of `count` parts take. */
export function partWidth(count: number): number {
  return Math.max(PART_DIGITS, String(count).length);
}

/** Base and number of a part's path, or undefined when it does not name a part. */
export function parsePartName(path: string): { base: string; index: number } | undefined {
  const m = PART_NAME.exec(path);
  return m === null ? undefined : { base: m[1]!, index: Number(m[2]) };
}

/** Every `BASE.part-N` file beside `base`, by number (a name of another width for the same number is refused). */
export async function findParts(base: string, opts: { suffix?: string } = {}): Promise<SplitPart[]> {
  const dir = dirname(base);
  const prefix = `${basename(base)}.part-`;
  const suffix = opts.suffix ?? '';
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw fromFsError(err, dir, 'reading');
  }
  const parts: SplitPart[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(suffix)) continue;
    const digits = name.slice(prefix.length, name.length - suffix.length);
    if (!/^\d{3,}$/.test(digits)) continue;
    const path = join(dir, name);
    parts.push({ index: Number(digits), path, size: await sizeOf(path) });
  }
  parts.sort((a, b) => a.index - b.index);
  for (let i = 1; i < parts.length; i++) {
    if (parts[i]!.index === parts[i - 1]!.index) {
      throw new AirlockError('INPUT_INVALID', `${parts[i - 1]!.path} and ${parts[i]!.path} are both part ${parts[i]!.index}`, {
        subject: parts[i]!.path,
        hint: 'remove the one that does not belong to this set',
      });
    }
  }
  return parts;
}

async function sizeOf(path: string): Promise<number> {
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new AirlockError('INPUT_INVALID', `${path} is not a regular file (a bundle part)`, { subject: path });
    return info.size;
  } catch (err) {
    throw fromFsError(err, path, 'reading');
  }
}

/**
 * The set `path` names, or undefined when it names a single file: `path` may be a part
 * (`NAME.part-001`, any of them), or `NAME` when only its parts exist. `explicit`, when given, is
 * the set itself (every part, in any order; they may be in different directories).
 *
 * @throws INTEGRITY naming a missing, truncated or unexpected part; INPUT_INVALID for names that do
 *   not make one set
 */
export async function resolveSplitSet(path: string, explicit?: readonly string[]): Promise<SplitSet | undefined> {
  if (explicit !== undefined && explicit.length > 1) return checkedSet(await explicitParts(explicit));
  const named = parsePartName(path);
  if (named !== undefined) {
    const parts = await findParts(named.base);
    // No part at all: the single-file reader says that `path` does not exist.
    return parts.length === 0 ? undefined : checkedSet(named.base, parts);
  }
  try {
    await stat(path);
    return undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return undefined; // the single-file reader reports it
  }
  const parts = await findParts(path);
  return parts.length === 0 ? undefined : checkedSet(path, parts);
}

async function explicitParts(paths: readonly string[]): Promise<[string, SplitPart[]]> {
  const parts: SplitPart[] = [];
  let base: string | undefined;
  for (const p of paths) {
    const named = parsePartName(p);
    if (named === undefined || (base !== undefined && basename(named.base) !== basename(base))) {
      throw new AirlockError('USAGE', `${p} is not a part of ${base === undefined ? 'a split bundle' : basename(base)}`, {
        subject: p,
        hint: 'pass one bundle file, its first part (NAME.part-001), or every part of one set',
      });
    }
    base ??= named.base;
    if (parts.some((q) => q.index === named.index)) throw new AirlockError('USAGE', `part ${named.index} is given twice`, { subject: p });
    parts.push({ index: named.index, path: p, size: await sizeOf(p) });
  }
  parts.sort((a, b) => a.index - b.index);
  // Messages and the sidecar go by the first part's directory.
  return [join(dirname(parts[0]!.path), basename(base!)), parts];
}

async function checkedSet(baseOrPair: string | [string, SplitPart[]], found?: SplitPart[]): Promise<SplitSet> {
  const [base, parts] = typeof baseOrPair === 'string' ? [baseOrPair, found!] : baseOrPair;
  const sidecar = `${base}.sha256`;
  const expected = await readSidecarLines(sidecar);
  const set = checkParts(base, parts, expected?.parts.length === 0 ? undefined : expected);
  return { ...set, ...(expected === undefined ? {} : { sidecar, expected }) };
}

/**
 * The set `parts` make, checked: numbered 1 to N without gaps (N from the sidecar's part lines
 * when there are any, else the highest number found), every part but the last of the same size,
 * no part empty.
 *
 * @throws INTEGRITY naming the first part that is missing, truncated or not of this set
 */
export function checkParts(base: string, parts: readonly SplitPart[], expected?: SidecarLines): SplitSet {
  const listed = expected?.parts.length ?? 0;
  const count = listed > 0 ? listed : (parts[parts.length - 1]?.index ?? 0);
  const byIndex = new Map(parts.map((p) => [p.index, p]));
  const name = (i: number): string => expected?.parts[i - 1]?.name ?? basename(partName(base, i, partWidth(count)));
  for (const p of parts) {
    if (p.index > count || p.index < 1) {
      throw partError(p.index, count, basename(p.path), `is not part of this set (${basename(base)}.sha256 lists ${count} parts)`, {
        hint: `move ${p.path} away: it belongs to another bundle or an older run`,
      });
    }
    if (listed > 0 && basename(p.path) !== name(p.index)) {
      throw partError(p.index, count, basename(p.path), `is named ${basename(p.path)}, but ${basename(base)}.sha256 lists ${name(p.index)}`, {
        hint: 'rename it as the sidecar lists it',
      });
    }
  }
  for (let i = 1; i <= count; i++) {
    if (!byIndex.has(i)) throw partError(i, count, name(i), 'is missing: copy it again');
  }
  const ordered = [...parts].sort((a, b) => a.index - b.index);
  // reduce, not Math.max(...): a set on hostile media may hold more parts than a call takes arguments.
  const full = ordered.reduce((n, p) => Math.max(n, p.size), 0);
  for (const p of ordered) {
    const last = p.index === count;
    if (p.size === 0 || (!last && p.size < full)) {
      throw partError(p.index, count, basename(p.path), `is truncated (${p.size} bytes, the other parts have ${full}): copy it again`);
    }
  }
  return { path: base, parts: ordered, size: ordered.reduce((n, p) => n + p.size, 0) };
}

/**
 * `err` (the archive's tail could not be read) for a set without a sidecar to count its parts:
 * the last part found may not be the last one. With a sidecar the count is known and checked, and
 * `err` is returned as it is.
 */
export function explainSetEnd(set: SplitSet, err: unknown): unknown {
  if (!(err instanceof AirlockError) || err.code !== 'INTEGRITY' || (set.expected?.parts.length ?? 0) > 0) return err;
  const last = set.parts[set.parts.length - 1]!;
  return new AirlockError('INTEGRITY', `${err.message} (the last part found, ${basename(last.path)}, does not end the archive)`, {
    subject: last.path,
    details: { ...err.details, part: last.index + 1, file: basename(partName(set.path, last.index + 1)) },
    hint: `a part after ${basename(last.path)} is missing, or that part is truncated: copy the parts again, with their ${basename(set.path)}.sha256 sidecar (which lists every part)`,
    cause: err,
  });
}

/** An error about part `index` of `count`: "part 3 of 7 (NAME.part-003) is damaged: copy it again". */
export function partError(index: number, count: number, file: string, what: string, opts: { hint?: string; cause?: unknown } = {}): AirlockError {
  return new AirlockError('INTEGRITY', `part ${index} of ${count} (${file}) ${what}`, {
    subject: file,
    details: { part: index, parts: count, file },
    hint: opts.hint ?? `copy ${file} again from the source media and compare it with the .sha256 sidecar (sha256sum -c)`,
    ...(opts.cause === undefined ? {} : { cause: opts.cause }),
  });
}

/** One `sha256sum` line of a sidecar. */
export interface SidecarLine {
  sha256: string;
  name: string;
}

/** What a sidecar says: the part lines in order, and the whole archive's line. */
export interface SidecarLines {
  parts: SidecarLine[];
  /** `# HASH  NAME`: the joined archive (a comment, so that `sha256sum -c` skips it for a split set). */
  whole?: SidecarLine;
  /** Plain lines that name no part (a single-file sidecar has one). */
  files: SidecarLine[];
}

/** Parse a sidecar's text: `HASH  NAME` lines (GNU sha256sum's format), and `# HASH  NAME` for the joined archive. */
export function parseSidecar(text: string): SidecarLines {
  const out: SidecarLines = { parts: [], files: [] };
  for (const line of text.split('\n')) {
    const m = /^(# )?([a-f0-9]{64}) [ *](.+)$/.exec(line);
    if (m === null) continue;
    const entry = { sha256: m[2]!, name: m[3]! };
    if (m[1] !== undefined) out.whole ??= entry;
    else if (parsePartName(entry.name) !== undefined) out.parts.push(entry);
    else out.files.push(entry);
  }
  return out;
}

/** The sidecar's lines, or undefined when there is none. */
export async function readSidecarLines(sidecar: string): Promise<SidecarLines | undefined> {
  try {
    await stat(sidecar);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromFsError(err, sidecar, 'reading');
  }
  const bytes = await readSmallFile(sidecar, { maxBytes: MAX_SIDECAR_BYTES, what: 'sha256sum sidecar' });
  return parseSidecar(bytes.toString('utf8'));
}

/**
 * The sidecar of a split set: a `sha256sum -c` line per part, then the joined archive's line as a
 * comment (`# HASH  NAME`; GNU sha256sum skips `#` lines, so `sha256sum -c` checks the parts as they
 * are, and `sed -n 's/^# //p' NAME.sha256 | sha256sum -c` the joined file).
 */
export function splitSidecar(base: string, parts: ReadonlyArray<{ path: string; sha256: string }>, wholeSha256: string): string {
  const lines = parts.map((p) => `${p.sha256}  ${basename(p.path)}`);
  lines.push(`# ${wholeSha256}  ${basename(base)}`);
  return `${lines.join('\n')}\n`;
}
