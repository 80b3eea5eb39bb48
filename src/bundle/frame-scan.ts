/**
 * Scan a bundle file that may be cut anywhere (`OUT.partial` after a crash or Ctrl-C): walk its
 * zstd frames from byte 0 by their headers, group them into tar entries, and report the complete
 * entries and where the valid prefix ends. Only each entry's 512-byte tar header is decompressed;
 * data blocks are skipped by their sizes.
 *
 * What the scan checks: frame and block headers (sizes, types, the file holding every byte they
 * announce), each entry's tar header (regular file, clean path), and that the frames of an entry
 * decompress — by their Frame_Content_Size — to exactly its header, data and padding. What it
 * does not: the content. Frames in airlock's Raw-block layout are sized from their header alone
 * (their block headers sit every 128 KiB); the resume step reads every kept byte anyway and checks
 * blocks and content there (see `archive-resume.ts`).
 */
import { openForReading, type RandomAccessFile } from './file-read.js';
import { locationName, type ArchiveLocation } from './split-set.js';
import { fromFsError } from '../errors.js';
import type { EntryEncoding, IndexEntry } from './airlock-index.js';
import { MAX_FRAME_CONTENT, TAR_BLOCK, ZSTD_FRAME_MAGIC } from './format.js';
import { MAX_FRAMES, type SeekFrame } from './seek-table.js';
import { decodeTarHeader, tarEntrySize, unsafePathReason } from './tar-entry.js';
import { decodePrefix, frameDecoder } from './zstd-decode.js';
import { BLOCK_HEADER_SIZE, FIRST_BLOCK_INPUT_MAX, RAW_BLOCK_MAX, RAW_FRAME_HEADER_SIZE, rawFrameSize } from './zstd-frames.js';

/** A complete entry: its index record and the sizes of its frames, in order. */
export interface ScannedEntry extends IndexEntry {
  frameSizes: SeekFrame[];
}

/** What {@link scanFrames} found. */
export interface FrameScan {
  /** Complete entries from the start of the file, consecutive. */
  entries: ScannedEntry[];
  /** File offset right after the last complete entry (0 when there is none). */
  end: number;
  /** Size of the file when it was scanned. */
  fileSize: number;
  /** Why the scan stopped at {@link end}, for messages (e.g. `the file ends inside a frame`). */
  stopped: string;
}

/**
 * Bytes read around a header at a time: 64 KiB, so the headers of small blocks and frames
 * (manifests, configs) come from one read, while a large block costs one read to skip.
 */
const WINDOW = 64 << 10;

/**
 * Most blocks a frame of content C may have: C / 1 KiB + 1024. libzstd cuts frames into 128 KiB
 * blocks (shorter ones only at the end of a worker job), so real frames are far below this; the
 * cap only stops a hostile file of 4-byte blocks from keeping the scan busy.
 */
const blockLimit = (content: number): number => Math.floor(content / 1024) + 1024;

/** Skippable frames: magic 0x184D2A50 … 0x184D2A5F (the airlock index and the seek table). */
const isSkippable = (magic: number): boolean => magic >>> 4 === 0x184d2a5;

/** The stored Raw-block frame header airlock writes: FHD 0x80 (4-byte content size), window 128 KiB. */
const RAW_FHD = 0x80;
const RAW_WD = 0x38;

interface Frame {
  size: number;
  content: number;
  encoding: EntryEncoding;
}

/** Why a frame or entry ends the valid prefix. */
class Stop {
  constructor(readonly why: string) {}
}

/**
 * Walk `path` from byte 0 and return its complete entries; see the module comment.
 *
 * @throws IO / INPUT_INVALID when the file cannot be opened or read (not for damage: damage ends the prefix)
 */
export async function scanFrames(loc: ArchiveLocation, opts: { signal?: AbortSignal | undefined } = {}): Promise<FrameScan> {
  const path = locationName(loc);
  const fh = await openForReading(loc);
  try {
    const fileSize = (await fh.stat()).size;
    const cursor = new Cursor(fh, fileSize, path);
    const entries: ScannedEntry[] = [];
    let pos = 0;
    let tarOffset = 0;
    let frameCount = 0;
    for (;;) {
      opts.signal?.throwIfAborted();
      const entry = await scanEntry(cursor, pos, tarOffset);
      if (entry instanceof Stop) return { entries, end: pos, fileSize, stopped: entry.why };
      frameCount += entry.frames;
      if (frameCount > MAX_FRAMES) return { entries, end: pos, fileSize, stopped: `more than ${MAX_FRAMES} frames` };
      entries.push(entry);
      for (const f of entry.frameSizes) pos += f.compressedSize;
      tarOffset += tarEntrySize(entry.size);
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** The entry whose first frame starts at `pos`, or why there is none. */
async function scanEntry(cursor: Cursor, pos: number, tarOffset: number): Promise<ScannedEntry | Stop> {
  if (pos === cursor.size) return new Stop('the file ends after the last complete entry');
  const first = await scanFrame(cursor, pos);
  if (first instanceof Stop) return first;
  const header = await readTarHeader(cursor, pos, first);
  if (header instanceof Stop) return header;
  const total = tarEntrySize(header.size);
  const frameSizes: SeekFrame[] = [{ compressedSize: first.size, decompressedSize: first.content }];
  let content = first.content;
  let at = pos + first.size;
  while (content < total) {
    if (frameSizes.length >= MAX_FRAMES) return new Stop(`${header.path}: more than ${MAX_FRAMES} frames`);
    const next = await scanFrame(cursor, at);
    if (next instanceof Stop) return new Stop(`${header.path}: ${next.why}`);
    if (next.encoding !== first.encoding) return new Stop(`${header.path}: frames of different kinds`);
    frameSizes.push({ compressedSize: next.size, decompressedSize: next.content });
    content += next.content;
    at += next.size;
  }
  if (content !== total) return new Stop(`${header.path}: frames hold ${content} bytes, the entry needs ${total}`);
  return {
    path: header.path,
    size: header.size,
    offset: pos,
    frames: frameSizes.length,
    dataOffset: tarOffset + TAR_BLOCK,
    encoding: first.encoding,
    frameSizes,
  };
}

/** Size, content size and kind of the frame at `pos`, from its headers only. */
async function scanFrame(cursor: Cursor, pos: number): Promise<Frame | Stop> {
  const head = await cursor.read(pos, 14);
  if (head === undefined || head.length < 4) return new Stop('the file ends inside a frame header');
  const magic = head.readUInt32LE(0);
  if (isSkippable(magic)) return new Stop('a skippable frame (index or seek table) follows');
  if (magic !== ZSTD_FRAME_MAGIC) return new Stop(`no zstd frame at byte ${pos}`);
  if (head.length < 6) return new Stop('the file ends inside a frame header');
  const fhd = head[4]!;
  const fcsFlag = fhd >>> 6;
  const single = (fhd & 0x20) !== 0;
  const checksum = (fhd & 0x04) !== 0;
  if ((fhd & 0x08) !== 0 || (fhd & 0x03) !== 0) return new Stop(`frame at byte ${pos}: reserved bit or dictionary`);
  const fcsSize = [single ? 1 : 0, 2, 4, 8][fcsFlag]!;
  if (fcsSize === 0) return new Stop(`frame at byte ${pos} does not record its content size`);
  const headerSize = 5 + (single ? 0 : 1) + fcsSize;
  if (head.length < headerSize) return new Stop('the file ends inside a frame header');
  const fcsAt = 5 + (single ? 0 : 1);
  const content =
    fcsSize === 1
      ? head[fcsAt]!
      : fcsSize === 2
        ? head.readUInt16LE(fcsAt) + 256
        : fcsSize === 4
          ? head.readUInt32LE(fcsAt)
          : Number(head.readBigUInt64LE(fcsAt));
  if (content === 0 || content > MAX_FRAME_CONTENT) return new Stop(`frame at byte ${pos} has content size ${content}`);
  if (!single && fhd === RAW_FHD && head[5] === RAW_WD) {
    const size = rawFrameSize(content);
    if (pos + size > cursor.size) return new Stop('the file ends inside a frame');
    return { size, content, encoding: 'raw' };
  }
  const windowSize = single ? content : windowOf(head[5]!);
  const blockMax = Math.min(windowSize, RAW_BLOCK_MAX);
  let at = pos + headerSize;
  let stored = 0;
  for (let blocks = 1; ; blocks++) {
    if (blocks > blockLimit(content)) return new Stop(`frame at byte ${pos} has too many blocks`);
    const bh = await cursor.read(at, BLOCK_HEADER_SIZE);
    if (bh === undefined || bh.length < BLOCK_HEADER_SIZE) return new Stop('the file ends inside a frame');
    const v = bh[0]! | (bh[1]! << 8) | (bh[2]! << 16);
    const type = (v >>> 1) & 3;
    const size = v >>> 3;
    if (type === 3 || size > blockMax) return new Stop(`frame at byte ${pos}: invalid block at byte ${at}`);
    if (type !== 2) stored += size; // Raw and RLE blocks say how much content they hold
    if (stored > content) return new Stop(`frame at byte ${pos}: blocks exceed its content size`);
    at += BLOCK_HEADER_SIZE + (type === 1 ? 1 : size);
    if ((v & 1) === 1) break;
  }
  if (checksum) at += 4;
  if (at > cursor.size) return new Stop('the file ends inside a frame');
  return { size: at - pos, content, encoding: 'zstd' };
}

/** Window_Descriptor → window size (RFC 8878 §3.1.1.1.2). */
function windowOf(wd: number): number {
  const base = 2 ** (10 + (wd >>> 3));
  return base + (base / 8) * (wd & 7);
}

/** Decompress the first 512 bytes of an entry's first frame and check they are a header airlock writes. */
async function readTarHeader(cursor: Cursor, pos: number, frame: Frame): Promise<{ path: string; size: number } | Stop> {
  if (frame.content < TAR_BLOCK) return new Stop(`frame at byte ${pos} is too small for a tar header`);
  const block = frame.encoding === 'raw' ? await rawPrefix(cursor, pos) : await zstdPrefix(cursor, pos, frame.size);
  if (block === undefined) return new Stop(`frame at byte ${pos}: its tar header cannot be decoded`);
  if (block.every((b) => b === 0)) return new Stop('the tar end marker follows');
  const h = decodeTarHeader(block);
  if (h === undefined) return new Stop(`no valid tar header at byte ${pos}`);
  const size = h.size;
  if (h.type !== 'File' || h.path === undefined || unsafePathReason(h.path) !== undefined || size === undefined || !Number.isSafeInteger(size) || size < 0) {
    return new Stop(`the tar header at byte ${pos} is not one airlock writes`);
  }
  return { path: h.path, size };
}

/** The first 512 content bytes of the Raw-block frame at `pos`. */
async function rawPrefix(cursor: Cursor, pos: number): Promise<Buffer | undefined> {
  return decodePrefix(cursorInput(cursor, pos, RAW_FRAME_HEADER_SIZE + BLOCK_HEADER_SIZE + TAR_BLOCK), TAR_BLOCK, frameDecoder('raw'));
}

/** The first 512 content bytes of the compressed frame at `pos`, from its first block. */
async function zstdPrefix(cursor: Cursor, pos: number, frameSize: number): Promise<Buffer | undefined> {
  return decodePrefix(cursorInput(cursor, pos, Math.min(frameSize, FIRST_BLOCK_INPUT_MAX)), TAR_BLOCK);
}

/** The file's bytes from `pos` on, `n` at most, in windows: as far as the decoder asks. */
async function* cursorInput(cursor: Cursor, pos: number, n: number): AsyncGenerator<Buffer> {
  for (let at = pos; at < pos + n; ) {
    const bytes = await cursor.read(at, Math.min(WINDOW, pos + n - at));
    if (bytes === undefined || bytes.length === 0) return;
    yield bytes;
    at += bytes.length;
  }
}

/** Positional reads with a small read-ahead window; `undefined` past the end of the file. */
class Cursor {
  readonly #fh: RandomAccessFile;
  readonly size: number;
  readonly #path: string;
  #buf = Buffer.alloc(0);
  #at = 0;

  constructor(fh: RandomAccessFile, size: number, path: string) {
    this.#fh = fh;
    this.size = size;
    this.#path = path;
  }

  /** Up to `n` (≤ {@link WINDOW}) bytes at `pos`: fewer only at the end of the file. */
  async read(pos: number, n: number): Promise<Buffer | undefined> {
    if (pos >= this.size) return undefined;
    const want = Math.min(n, this.size - pos);
    if (pos < this.#at || pos + want > this.#at + this.#buf.length) {
      const len = Math.min(WINDOW, this.size - pos);
      const buf = Buffer.allocUnsafe(len);
      let done = 0;
      try {
        while (done < len) {
          const { bytesRead } = await this.#fh.read(buf, done, len - done, pos + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
      } catch (err) {
        throw fromFsError(err, this.#path, 'reading');
      }
      this.#buf = buf.subarray(0, done);
      this.#at = pos;
    }
    return this.#buf.subarray(pos - this.#at, Math.min(pos - this.#at + want, this.#buf.length));
  }
}
