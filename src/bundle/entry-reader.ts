/**
 * A readable stream of one entry's data, decoded from only that entry's frames by the decoder of
 * zstd-decode.ts (Raw frames unwrapped without libzstd, compressed frames through it), one frame
 * at a time, each held to the size the seek table gives. The tar header at the start of the first
 * frame is checked against the index and skipped, the padding at the end dropped.
 *
 * The bytes are NOT verified here: the caller pipes them through a VerifyingStream holding the
 * digest and size from the signed bundle.json.
 */
import { Readable } from 'node:stream';
import { AirlockError } from '../errors.js';
import type { LocatedEntry } from './airlock-index.js';
import { READ_CHUNK, readExactly, type RandomAccessFile } from './file-read.js';
import { TAR_BLOCK, ZSTD_FRAME_MAGIC } from './format.js';
import type { SeekFrame } from './seek-table.js';
import { decodeTarHeader } from './tar-entry.js';
import { frameDecoder, ZstdDecodeError, type FrameDecoder } from './zstd-decode.js';
import { isRawFrameHeader } from './zstd-frames.js';

/** Skippable frame magics are 0x184D2A50 … 0x184D2A5F: this is the value of their top 28 bits. */
const SKIPPABLE_MAGIC_HIGH = 0x184d2a5;

/** The ustar magic and version airlock writes (POSIX.1-1988): `ustar\0` `00`. */
const USTAR = Buffer.from('ustar\x0000', 'latin1');

export function isZeros(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * Why a tar header is not the one airlock writes for `entry`, or undefined. The ustar magic
 * matters: under the old GNU magic the prefix field holds times, and GNU tar would read another
 * path than the one checked here.
 */
export function tarHeaderMismatch(block: Buffer, entry: { path: string; size: number }): string | undefined {
  const h = decodeTarHeader(block);
  if (h === undefined) return 'not a valid tar header';
  if (!block.subarray(257, 265).equals(USTAR)) return 'not a POSIX ustar header';
  if (h.type !== 'File') return `type ${h.type ?? '?'}, not a regular file`;
  if (h.path !== entry.path) return `path ${JSON.stringify(h.path)}, the index says ${JSON.stringify(entry.path)}`;
  if (h.size !== entry.size) return `size ${String(h.size)}, the index says ${entry.size}`;
  return undefined;
}

/**
 * Pieces buffered ahead of the consumer: 8 (up to 1 MiB of Raw-block data, 8 MiB of zstd output).
 * The stream is in object mode so that each piece is handed out as it is: in byte mode a reader
 * (an async iterator, `read()`) gets everything buffered concatenated into a new buffer, which
 * for 128 KiB Raw blocks meant copying and allocating every byte once more (measured on import:
 * ~0.2 s of memmove per GiB, plus the garbage collections that allocation triggers).
 */
const PIECES_AHEAD = 8;

/** The stream returned by `ArchiveReader.openEntry`: Buffers, in object mode (see PIECES_AHEAD). */
export class EntryReadable extends Readable {
  readonly #fh: RandomAccessFile;
  readonly #path: string;
  readonly #entry: LocatedEntry;
  readonly #frames: readonly SeekFrame[];
  /** Decodes the current frame; reset, with the frame's size as its limit, for each one. */
  readonly #decoder: FrameDecoder;
  #frame: number;
  /** Bytes of the current frame read from disk. */
  #framePos = 0;
  #filePos: number;
  /** The pieces of the last read, while they are being handed out. */
  #pieces: Iterator<Buffer, void> | undefined;
  /** Bytes of the entry's tar content (header, data, padding) decoded so far. */
  #content = 0;
  #header: Buffer[] = [];
  #reading = false;

  readonly #onBytes: ((n: number) => void) | undefined;

  constructor(fh: RandomAccessFile, path: string, entry: LocatedEntry, frames: readonly SeekFrame[], onBytes?: (n: number) => void) {
    super({ objectMode: true, highWaterMark: PIECES_AHEAD });
    this.#onBytes = onBytes;
    this.#fh = fh;
    this.#path = path;
    this.#entry = entry;
    this.#frames = frames;
    this.#frame = entry.firstFrame;
    this.#filePos = entry.offset;
    this.#decoder = frameDecoder(entry.encoding);
  }

  override _read(): void {
    if (this.#reading) return;
    this.#reading = true;
    this.#pump().catch((err: unknown) => this.destroy(err as Error));
  }

  /**
   * Decode until a push reports backpressure or the entry ends. The decoder produces one piece
   * (one Raw block, or at most one 1 MiB zstd step) per request, and no more than the frame's
   * size in the seek table, so a highly compressible — or hostile — frame never inflates more
   * than that ahead of the consumer.
   */
  async #pump(): Promise<void> {
    for (;;) {
      if (this.#pieces === undefined) {
        if (this.#frame === this.#entry.firstFrame + this.#entry.frames) {
          this.#finish();
          return;
        }
        const frame = this.#frames[this.#frame]!;
        if (this.#framePos > 0 && this.#framePos === frame.compressedSize) {
          this.#endFrame(frame);
          continue;
        }
        const starting = this.#framePos === 0;
        const n = Math.min(READ_CHUNK, frame.compressedSize - this.#framePos);
        const chunk = await readExactly(this.#fh, n, this.#filePos, this.#path);
        this.#filePos += n;
        this.#framePos += n;
        if (starting) {
          this.#checkKind(chunk);
          this.#decoder.reset(frame.decompressedSize);
        }
        this.#pieces = this.#decoder.decode(chunk);
      }
      const piece = this.#nextPiece();
      if (piece === undefined) {
        this.#pieces = undefined;
        continue;
      }
      if (!this.#route(piece)) {
        // Cleared in the same tick as the last push, so the next _read call is never lost.
        this.#reading = false;
        return;
      }
    }
  }

  /**
   * The frame at the offset the seek table gives must be a zstd frame of the kind the index
   * declares: libzstd would also read a Raw-block frame declared compressed, and skip a skippable
   * frame, but then the index would not describe the archive, and what one reader accepts another
   * (`bundle verify`, the frame scan of a resumed create) must not read differently.
   */
  #checkKind(start: Buffer): void {
    const magic = start.length >= 4 ? start.readUInt32LE(0) : 0;
    if (magic >>> 4 === SKIPPABLE_MAGIC_HIGH) throw this.#damaged(`frame ${this.#frame} is a skippable frame inside the entry`);
    if (magic !== ZSTD_FRAME_MAGIC) throw this.#damaged(`frame ${this.#frame} does not start with a zstd frame header`);
    const raw = isRawFrameHeader(start);
    if (this.#entry.encoding === 'raw' && !raw)
      throw this.#damaged(`the index says Raw blocks, but frame ${this.#frame} has another header (a compressed frame, or a damaged one)`);
    if (this.#entry.encoding === 'zstd' && raw) throw this.#damaged(`the index says compressed, but frame ${this.#frame} is a Raw-block frame`);
  }

  /** The next piece of the current read, or undefined when it has none left. */
  #nextPiece(): Buffer | undefined {
    try {
      const next = this.#pieces!.next();
      return next.done === true ? undefined : next.value;
    } catch (err) {
      throw this.#decodeFailure(err);
    }
  }

  #endFrame(frame: SeekFrame): void {
    try {
      this.#decoder.end();
    } catch (err) {
      throw this.#decodeFailure(err);
    }
    if (this.#decoder.outputBytes !== frame.decompressedSize) throw this.#damaged(`frame ${this.#frame} size differs from the seek table`);
    this.#frame += 1;
    this.#framePos = 0;
  }

  /** A decoder's failure as damage to the current frame. */
  #decodeFailure(err: unknown): unknown {
    if (!(err instanceof ZstdDecodeError)) return err;
    const i = this.#frame;
    switch (err.reason) {
      // One seek-table frame is exactly one zstd frame: the seek table does not describe a second.
      case 'trailing-data':
        return this.#damaged(`data after the end of frame ${i}`);
      case 'truncated':
        return this.#damaged(`frame ${i} is incomplete`);
      case 'too-large':
        return this.#damaged(`frame ${i} is larger than the seek table says`);
      case 'corrupt':
        return this.#damaged(`frame ${i}: ${err.message}`);
    }
  }

  /** Send a piece of tar content where it belongs: header check, data out, padding dropped. */
  #route(piece: Buffer): boolean {
    let p = piece;
    let more = true;
    if (this.#content < TAR_BLOCK) {
      const n = Math.min(TAR_BLOCK - this.#content, p.length);
      this.#header.push(p.subarray(0, n));
      this.#content += n;
      p = p.subarray(n);
      if (this.#content === TAR_BLOCK) this.#checkHeader(Buffer.concat(this.#header));
    }
    const dataLeft = TAR_BLOCK + this.#entry.size - this.#content;
    let padding = p;
    if (p.length > 0 && dataLeft > 0) {
      const data = p.length <= dataLeft ? p : p.subarray(0, dataLeft);
      padding = p.subarray(data.length);
      this.#onBytes?.(data.length);
      more = this.push(data);
    }
    // A tar reader skips the padding; anything but zeros there is not what airlock writes.
    if (padding.length > 0 && !isZeros(padding)) throw this.#damaged('non-zero bytes in its tar padding');
    this.#content += p.length;
    return more;
  }

  #checkHeader(block: Buffer): void {
    const why = tarHeaderMismatch(block, this.#entry);
    if (why !== undefined) throw this.#damaged(`its tar header does not match the index: ${why}`);
  }

  #finish(): void {
    if (this.#content < TAR_BLOCK + this.#entry.size) throw this.#damaged('its frames end before its data');
    this.push(null);
  }

  #damaged(why: string): AirlockError {
    return new AirlockError('INTEGRITY', `${this.#path}: entry ${this.#entry.path} is damaged: ${why}`, {
      subject: this.#entry.path,
      hint: 'copy the bundle again and compare it with its .sha256 sidecar',
    });
  }
}
