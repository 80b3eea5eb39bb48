/**
 * Hand-built zstd frames (RFC 8878): frames of Raw blocks and skippable frames.
 *
 * Already-compressed blobs (gzip/zstd layers) go into the bundle as frames of Raw blocks: block
 * type 0, the bytes stored as they are. Every zstd decoder reads them, and writing one costs a
 * memcpy instead of a compression pass. The frame header carries Frame_Content_Size and a
 * Window_Descriptor of 128 KiB rather than Single_Segment: with Single_Segment the window is the
 * whole content, and decoders refuse windows above 128 MiB by default (`zstd -d`: "Frame requires
 * too much memory for decoding"), so a 1 GiB raw frame would be unreadable.
 */
import { AirlockError } from '../errors.js';
import { ZSTD_FRAME_MAGIC } from './format.js';

/** Largest block a decoder must accept (Block_Maximum_Size = min(Window_Size, 128 KiB)). */
export const RAW_BLOCK_MAX = 128 * 1024;

/** Size of the raw block header (Last_Block bit, Block_Type, Block_Size: 3 bytes LE). */
export const BLOCK_HEADER_SIZE = 3;

/**
 * Raw frame header: magic (4), Frame_Header_Descriptor (1), Window_Descriptor (1), 4-byte
 * Frame_Content_Size. Frames hold at most MAX_FRAME_CONTENT (1 GiB) so 4 bytes always suffice.
 */
export const RAW_FRAME_HEADER_SIZE = 10;

/** FHD: Frame_Content_Size_Flag = 2 (4 bytes), no Single_Segment, no checksum, no dictionary. */
const RAW_FHD = 2 << 6;
/** Window_Descriptor: Exponent 7, Mantissa 0 → window 2^(10+7) = 128 KiB, the raw block size. */
const RAW_WINDOW_DESCRIPTOR = 7 << 3;

/**
 * Compressed bytes that always hold the first block of a frame: the largest frame header (18
 * bytes), a block header (3) and the largest block (128 KiB, Block_Maximum_Size; a block that
 * would compress to more is stored Raw). An entry's tar header, its first 512 bytes, is in that
 * block, and libzstd yields nothing of a compressed block until it has all of it: for content that
 * compresses poorly, that is most of 128 KiB. A frame that needs more input to yield the header is
 * not a valid zstd frame.
 */
export const FIRST_BLOCK_INPUT_MAX = 18 + BLOCK_HEADER_SIZE + RAW_BLOCK_MAX;

/** Number of bytes a raw frame holding `contentSize` bytes takes on disk. */
export function rawFrameSize(contentSize: number): number {
  return RAW_FRAME_HEADER_SIZE + Math.ceil(contentSize / RAW_BLOCK_MAX) * BLOCK_HEADER_SIZE + contentSize;
}

/** Write the header of a raw frame of `contentSize` bytes (1 … 2^32-1) at `out[off]`. */
export function writeRawFrameHeader(out: Buffer, off: number, contentSize: number): number {
  if (contentSize <= 0 || contentSize > 0xffff_ffff) throw new RangeError(`raw frame size ${contentSize}`);
  out.writeUInt32LE(ZSTD_FRAME_MAGIC, off);
  out[off + 4] = RAW_FHD;
  out[off + 5] = RAW_WINDOW_DESCRIPTOR;
  out.writeUInt32LE(contentSize, off + 6);
  return off + RAW_FRAME_HEADER_SIZE;
}

/** Write a raw block header announcing `size` bytes (1 … 128 KiB) at `out[off]`. */
export function writeRawBlockHeader(out: Buffer, off: number, size: number, last: boolean): number {
  const v = (size << 3) | (last ? 1 : 0); // Block_Type 0 (Raw) in bits 1–2
  out[off] = v & 0xff;
  out[off + 1] = (v >>> 8) & 0xff;
  out[off + 2] = (v >>> 16) & 0xff;
  return off + BLOCK_HEADER_SIZE;
}

/** True when `start` (a frame's first bytes) is the header of a Raw-block frame as airlock writes it. */
export function isRawFrameHeader(start: Buffer): boolean {
  return start.length >= 6 && start.readUInt32LE(0) === ZSTD_FRAME_MAGIC && start[4] === RAW_FHD && start[5] === RAW_WINDOW_DESCRIPTOR;
}

/** A complete skippable frame: magic, u32 LE payload size, payload. */
export function skippableFrame(magic: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(8 + payload.length);
  frame.writeUInt32LE(magic, 0);
  frame.writeUInt32LE(payload.length, 4);
  payload.copy(frame, 8);
  return frame;
}

function badRaw(what: string): AirlockError {
  return new AirlockError('INTEGRITY', `damaged raw zstd frame: ${what}`);
}

type RawState = 'header' | 'block-header' | 'block-body' | 'done';

/**
 * Incremental unwrapper of one raw frame: feed it the frame's bytes in any chunking and it returns
 * the stored content as zero-copy slices. Anything but Raw blocks, a checksum, a dictionary or a
 * content size that disagrees with the blocks is INTEGRITY: the frame did not come from airlock.
 */
export class RawFrameDecoder {
  #state: RawState = 'header';
  #pending = Buffer.alloc(0);
  #contentSize = 0;
  #produced = 0;
  #blockRemaining = 0;
  #lastBlock = false;

  /** True once the last block has been read completely. */
  get done(): boolean {
    return this.#state === 'done';
  }

  /** Content size announced by the frame header (0 until the header has been read). */
  get contentSize(): number {
    return this.#contentSize;
  }

  /** Consume `chunk`; returns the content bytes it carried. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#state === 'done') throw badRaw('data after the last block');
      if (this.#state === 'block-body') {
        const n = Math.min(this.#blockRemaining, chunk.length - pos);
        out.push(chunk.subarray(pos, pos + n));
        pos += n;
        this.#blockRemaining -= n;
        this.#produced += n;
        if (this.#blockRemaining === 0) this.#endBlock();
        continue;
      }
      const need = this.#state === 'header' ? RAW_FRAME_HEADER_SIZE : BLOCK_HEADER_SIZE;
      const take = Math.min(need - this.#pending.length, chunk.length - pos);
      this.#pending = Buffer.concat([this.#pending, chunk.subarray(pos, pos + take)]);
      pos += take;
      if (this.#pending.length < need) continue;
      if (this.#state === 'header') this.#readHeader(this.#pending);
      else this.#readBlockHeader(this.#pending);
      this.#pending = Buffer.alloc(0);
    }
    return out;
  }

  /** Throw unless the whole frame has been consumed. */
  finish(): void {
    if (this.#state !== 'done') throw badRaw('frame ends before its last block');
  }

  #readHeader(h: Buffer): void {
    if (h.readUInt32LE(0) !== ZSTD_FRAME_MAGIC) throw badRaw('bad magic');
    if (h[4] !== RAW_FHD || h[5] !== RAW_WINDOW_DESCRIPTOR) throw badRaw('unexpected frame header');
    this.#contentSize = h.readUInt32LE(6);
    if (this.#contentSize === 0) throw badRaw('empty frame');
    this.#state = 'block-header';
  }

  #readBlockHeader(h: Buffer): void {
    const v = h[0]! | (h[1]! << 8) | (h[2]! << 16);
    const type = (v >>> 1) & 3;
    const size = v >>> 3;
    if (type !== 0) throw badRaw(`block type ${type} in a raw frame`);
    if (size === 0 || size > RAW_BLOCK_MAX) throw badRaw(`block size ${size}`);
    if (this.#produced + size > this.#contentSize) throw badRaw('blocks exceed the frame content size');
    this.#lastBlock = (v & 1) === 1;
    this.#blockRemaining = size;
    this.#state = 'block-body';
  }

  #endBlock(): void {
    if (!this.#lastBlock) {
      this.#state = 'block-header';
      return;
    }
    if (this.#produced !== this.#contentSize) throw badRaw('content size does not match the blocks');
    this.#state = 'done';
  }
}
