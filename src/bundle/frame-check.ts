/**
 * A cheap look at every entry before any is read (import runs it before it writes anything;
 * verify before it reads): each frame starts, at the offset the seek table gives, with a zstd
 * frame header of the kind the index declares; a Raw-block frame has exactly the size its header
 * implies and starts with a Raw block; each entry's tar header, decoded from the start of its
 * first frame, is the one airlock writes for the path and size the index gives.
 *
 * It reads the start of each entry (up to 16 KiB, more only when the first block of a compressed
 * frame is larger) and 6 bytes per further frame (10 of a Raw-block one), not the content: damage inside the content is
 * found by the reader that streams it (entry-reader.ts).
 */
import { AirlockError } from '../errors.js';
import type { LocatedEntry } from './airlock-index.js';
import { tarHeaderMismatch } from './entry-reader.js';
import { readExactly, type RandomAccessFile } from './file-read.js';
import { TAR_BLOCK, ZSTD_FRAME_MAGIC } from './format.js';
import type { SeekFrame } from './seek-table.js';
import { decodePrefix, ZstdDecoder } from './zstd-decode.js';
import { BLOCK_HEADER_SIZE, FIRST_BLOCK_INPUT_MAX, isRawFrameHeader, RAW_FRAME_HEADER_SIZE, rawFrameSize } from './zstd-frames.js';

/**
 * Compressed bytes read first to decode a tar header out of a compressed frame: 16 KiB. The 512
 * header bytes come out of the frame's first block, which libzstd decodes only once it has all of
 * it; for most content that block compresses well below this. The rest of it, up to
 * FIRST_BLOCK_INPUT_MAX, is read only when it does not (content that barely compresses).
 */
const HEADER_INPUT_FIRST = 16 << 10;

/** Skippable frame magics are 0x184D2A50 … 0x184D2A5F: the value of their top 28 bits. */
const SKIPPABLE_MAGIC_HIGH = 0x184d2a5;

/**
 * Check every entry's frames and tar header as described in the module comment.
 *
 * @throws INTEGRITY naming the entry and what is wrong
 */
export async function checkFrames(
  fh: RandomAccessFile,
  path: string,
  entries: readonly LocatedEntry[],
  frames: readonly SeekFrame[],
  signal?: AbortSignal,
): Promise<void> {
  const decoder = new ZstdDecoder({ step: TAR_BLOCK, reuseOutput: true });
  for (const entry of entries) {
    signal?.throwIfAborted();
    const damaged = (why: string): AirlockError =>
      new AirlockError('INTEGRITY', `${path}: entry ${entry.path} is damaged: ${why}`, {
        subject: entry.path,
        hint: 'copy the bundle again and compare it with its .sha256 sidecar',
      });
    let offset = entry.offset;
    for (let i = entry.firstFrame; i < entry.firstFrame + entry.frames; i++) {
      const frame = frames[i]!;
      const first = i === entry.firstFrame;
      const want = first
        ? Math.min(frame.compressedSize, entry.encoding === 'raw' ? RAW_FRAME_HEADER_SIZE + BLOCK_HEADER_SIZE + TAR_BLOCK : HEADER_INPUT_FIRST)
        : // A Raw-block frame's header (10 bytes) holds the content size checked below; a zstd one's magic and descriptor 6.
          Math.min(frame.compressedSize, entry.encoding === 'raw' ? RAW_FRAME_HEADER_SIZE : 6);
      const start = await readExactly(fh, want, offset, path);
      const why = frameProblem(start, frame, entry.encoding);
      if (why !== undefined) throw damaged(`frame ${i} ${why}`);
      if (first) {
        const header =
          entry.encoding === 'raw'
            ? rawHeaderBlock(start)
            : await decodePrefix(firstBlockInput(fh, path, start, offset, Math.min(frame.compressedSize, FIRST_BLOCK_INPUT_MAX)), TAR_BLOCK, decoder);
        if (header === undefined) throw damaged(`frame ${i}: its tar header cannot be decoded`);
        const mismatch = tarHeaderMismatch(header, entry);
        if (mismatch !== undefined) throw damaged(`its tar header does not match the index: ${mismatch}`);
      }
      offset += frame.compressedSize;
    }
  }
}

/** What is wrong with the frame that starts with `start`, or undefined. */
function frameProblem(start: Buffer, frame: SeekFrame, encoding: LocatedEntry['encoding']): string | undefined {
  const magic = start.length >= 4 ? start.readUInt32LE(0) : 0;
  if (magic >>> 4 === SKIPPABLE_MAGIC_HIGH) return 'is a skippable frame inside the entry';
  if (magic !== ZSTD_FRAME_MAGIC) return 'does not start with a zstd frame header (the seek table does not match the frames)';
  const raw = isRawFrameHeader(start);
  if (encoding === 'zstd') return raw ? 'is a Raw-block frame, but the index says compressed' : undefined;
  if (!raw) return 'has another header than a Raw-block frame, but the index says Raw blocks';
  if (
    start.length < RAW_FRAME_HEADER_SIZE ||
    rawFrameSize(frame.decompressedSize) !== frame.compressedSize ||
    start.readUInt32LE(6) !== frame.decompressedSize
  ) {
    return 'has another size than its Raw-block header implies (data before or after it in its seek-table range?)';
  }
  if (start.length >= RAW_FRAME_HEADER_SIZE + BLOCK_HEADER_SIZE && ((start[RAW_FRAME_HEADER_SIZE]! >>> 1) & 3) !== 0) {
    return 'mixes block types: its first block is not a Raw block';
  }
  return undefined;
}

/** The first 512 content bytes of a Raw-block frame (its first block holds at least that much). */
function rawHeaderBlock(start: Buffer): Buffer | undefined {
  const at = RAW_FRAME_HEADER_SIZE + BLOCK_HEADER_SIZE;
  if (start.length < at + TAR_BLOCK) return undefined;
  const v = start[RAW_FRAME_HEADER_SIZE]! | (start[RAW_FRAME_HEADER_SIZE + 1]! << 8) | (start[RAW_FRAME_HEADER_SIZE + 2]! << 16);
  return v >>> 3 >= TAR_BLOCK ? start.subarray(at, at + TAR_BLOCK) : undefined;
}

/** `start`, then the rest of the frame's first `limit` bytes, read only if the decoder asks. */
async function* firstBlockInput(fh: RandomAccessFile, path: string, start: Buffer, offset: number, limit: number): AsyncGenerator<Buffer> {
  yield start;
  if (limit > start.length) yield await readExactly(fh, limit - start.length, offset + start.length, path);
}
