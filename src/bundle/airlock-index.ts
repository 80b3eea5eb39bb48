/**
 * The airlock index: a skippable frame (magic 0x184D2A5B) after the tar end frame, holding JSON
 * that maps every tar entry to its frames, so a reader can decompress one entry without reading
 * anything else. It is unsigned: it only says where to look. What is found there is checked
 * against the signed bundle.json by the caller, and the index itself against the seek table here.
 */
import type { AirlockError } from '../errors.js';
import { INDEX_SCHEMA_VERSION, MAX_FRAME_CONTENT, notABundle, TAR_BLOCK, TAR_END_SIZE } from './format.js';
import type { SeekFrame } from './seek-table.js';
import { parseStrictJson } from './strict-json.js';
import { tarEntrySize, unsafePathReason } from './tar-entry.js';

/** How an entry's frames are encoded: zstd-compressed, or Raw blocks (already-compressed blobs). */
export type EntryEncoding = 'zstd' | 'raw';

/** One tar entry as the index records it. */
export interface IndexEntry {
  /** Path inside the tar, e.g. `blobs/sha256/<hex>`. */
  path: string;
  /** Size of the entry's data in bytes. */
  size: number;
  /** Offset in the bundle file of the entry's first frame (which starts with its tar header). */
  offset: number;
  /** Number of consecutive frames holding header, data and padding. */
  frames: number;
  /** Offset of the entry's first data byte in the decompressed tar stream. */
  dataOffset: number;
  encoding: EntryEncoding;
}

/** An index entry with the position of its first frame in the seek table. */
export interface LocatedEntry extends IndexEntry {
  firstFrame: number;
}

/** Largest index frame a reader accepts: 64 MiB, about 450,000 entries. */
export const MAX_INDEX_BYTES = 64 << 20;

/** Serialise the index payload (compact JSON, one object). */
export function encodeIndex(entries: readonly IndexEntry[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: INDEX_SCHEMA_VERSION, entries }));
}

function bad(path: string, why: string): AirlockError {
  return notABundle(path, `airlock index: ${why}`);
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Parse the index payload and check each entry's shape. */
export function decodeIndex(payload: Buffer, path: string): IndexEntry[] {
  let doc: unknown;
  try {
    doc = parseStrictJson(payload);
  } catch (err) {
    throw bad(path, (err as Error).message);
  }
  const d = doc as { schemaVersion?: unknown; entries?: unknown };
  if (typeof doc !== 'object' || doc === null || d.schemaVersion !== INDEX_SCHEMA_VERSION || !Array.isArray(d.entries)) {
    throw bad(path, 'unknown version or no entries');
  }
  return d.entries.map((raw: unknown, i: number): IndexEntry => {
    const e = raw as Partial<Record<keyof IndexEntry, unknown>>;
    const ok =
      typeof raw === 'object' &&
      raw !== null &&
      typeof e.path === 'string' &&
      unsafePathReason(e.path) === undefined &&
      isCount(e.size) &&
      isCount(e.offset) &&
      isCount(e.frames) &&
      e.frames > 0 &&
      isCount(e.dataOffset) &&
      (e.encoding === 'zstd' || e.encoding === 'raw');
    if (!ok) {
      const unsafe = typeof e.path === 'string' ? unsafePathReason(e.path) : undefined;
      throw bad(path, `entry ${i} is malformed${unsafe === undefined ? '' : ` (${unsafe}: ${JSON.stringify(e.path)})`}`);
    }
    return e as IndexEntry;
  });
}

/**
 * Check the index against the seek table: entries occupy consecutive frames from the first,
 * each entry's frames decompress to exactly its header, data and padding, then come the tar end
 * frame and the index frame itself (decompressed size 0), and nothing else. With `exactSplit`
 * (verify and import), every frame of an entry but its last holds exactly 1 GiB.
 */
export function locateEntries(entries: readonly IndexEntry[], frames: readonly SeekFrame[], path: string, opts: { exactSplit?: boolean } = {}): LocatedEntry[] {
  if (frames.length < 2) throw bad(path, 'too few frames');
  const seen = new Set<string>();
  const located: LocatedEntry[] = [];
  let frame = 0;
  let offset = 0;
  let tarOffset = 0;
  for (const e of entries) {
    if (seen.has(e.path)) throw bad(path, `duplicate entry ${e.path}`);
    seen.add(e.path);
    if (e.offset !== offset || e.dataOffset !== tarOffset + TAR_BLOCK) throw bad(path, `${e.path} is not where the frames put it`);
    if (frame + e.frames > frames.length - 2) throw bad(path, `${e.path} extends past the data frames`);
    let content = 0;
    for (let i = frame; i < frame + e.frames; i++) {
      const f = frames[i]!;
      if (f.decompressedSize === 0 || f.decompressedSize > MAX_FRAME_CONTENT) throw bad(path, `frame ${i} has an invalid size`);
      // The format splits an entry only at 1 GiB: a frame boundary anywhere else (inside a tar
      // header, say) is not what airlock writes, and the frame scan of a resumed create relies on it.
      if (opts.exactSplit === true && i < frame + e.frames - 1 && f.decompressedSize !== MAX_FRAME_CONTENT) {
        throw bad(path, `${e.path}: frame ${i} holds ${f.decompressedSize} bytes; only an entry's last frame may hold less than 1 GiB`);
      }
      content += f.decompressedSize;
      offset += f.compressedSize;
    }
    if (content !== tarEntrySize(e.size)) throw bad(path, `${e.path}: frames hold ${content} bytes, the entry needs ${tarEntrySize(e.size)}`);
    located.push({ ...e, firstFrame: frame });
    frame += e.frames;
    tarOffset += content;
  }
  if (frame !== frames.length - 2) throw bad(path, 'frames not accounted for by any entry');
  if (frames[frame]!.decompressedSize !== TAR_END_SIZE) throw bad(path, 'no tar end frame');
  if (frames[frame + 1]!.decompressedSize !== 0) throw bad(path, 'index frame must decompress to nothing');
  return located;
}
