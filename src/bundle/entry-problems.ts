/**
 * What is wrong with a tar entry as far as a bundle is concerned. A bundle holds only regular
 * files at clean relative paths, described by plain ustar headers; node-tar reports links,
 * devices, directories, `..`, absolute paths and PAX/GNU path overrides without complaint.
 */
import type { Header, ReadEntry } from 'tar';
import { unsafePathReason } from './tar-entry.js';

/** A tar entry as seen by a sequential pass, with everything that makes it unacceptable. */
export interface StreamedEntry {
  /** The path an extractor would use (extended-header overrides applied). */
  path: string;
  /** Data size in bytes (from the header, or an extended header that overrides it). */
  size: number;
  /** node-tar's type name: `File`, `OldFile`, `Directory`, `SymbolicLink`, `Link`, … */
  type: string;
  /** The decoded header, for details. */
  header: Header;
  /** Link target of a link entry. */
  linkpath?: string;
  /** Why this entry must not be in a bundle; empty when it is a safe regular file. */
  problems: string[];
}

/** Entry types that are plain regular files. */
const REGULAR_TYPES: ReadonlySet<string> = new Set(['File', 'OldFile']);

/** Extended-header keys that change where or what an entry is. */
const OVERRIDES = ['path', 'linkpath', 'size'] as const;

/** Describe `entry`; `ignored` marks an entry of a type node-tar skips (sparse, volume label…). */
export function describeEntry(entry: ReadEntry, ignored: boolean): StreamedEntry {
  const problems: string[] = [];
  const type = ignored && !entry.meta ? `Unsupported(${entry.header.typeKey})` : entry.type;
  if (entry.meta) problems.push(`oversized ${entry.type} header`);
  else if (!REGULAR_TYPES.has(type)) {
    problems.push(`not a regular file: ${type}${entry.linkpath ? ` -> ${entry.linkpath}` : ''}`);
  }
  const unsafe = unsafePathReason(entry.path);
  if (unsafe !== undefined) problems.push(`unsafe path: ${unsafe}`);
  for (const ex of [entry.extended, entry.globalExtended]) {
    if (ex === undefined) continue;
    const keys = OVERRIDES.filter((k) => ex[k] !== undefined);
    if (keys.length > 0) problems.push(`extended header overrides ${keys.join(', ')}`);
  }
  return {
    path: entry.path,
    size: entry.size,
    type,
    header: entry.header,
    ...(entry.linkpath ? { linkpath: entry.linkpath } : {}),
    problems,
  };
}
