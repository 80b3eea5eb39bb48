/**
 * The two ways a frame's content reaches the file: zstd-compressed (libzstd streaming API,
 * writing straight into the output buffer) or stored in Raw blocks. Both are driven the same
 * way: {@link FrameEncoder.begin} with the exact content size, {@link FrameEncoder.write} the
 * content in any chunking, {@link FrameEncoder.end}.
 */
import { AirlockError } from '../errors.js';
import type { BatchOutput } from './batch-output.js';
import { zstd, type CCtx } from './zstd-binding.js';
import { RAW_BLOCK_MAX, writeRawBlockHeader, writeRawFrameHeader } from './zstd-frames.js';

/** Writes frames of a known content size into the output. */
export interface FrameEncoder {
  begin(contentSize: number): Promise<void>;
  write(chunk: Buffer): Promise<void>;
  end(): Promise<void>;
}

/**
 * Default zstd level: 1. On a mix of uncompressed layer tars and JSON (docs/FORMAT.md) level 1
 * with 2 workers compressed at ~570 MB/s to 38.3 %, level 3 at ~320 MB/s to 33.5 %: level 3
 * saves 12 % of the compressible part, usually a small share of a bundle (most layers are gzip
 * and stored raw), and costs 1.8× the CPU on the create path.
 */
export const DEFAULT_LEVEL = 1;

/**
 * Default libzstd worker threads: 2. With workers, compression runs off the event loop (the
 * main thread only hands over input and collects output); without, a 1 MiB chunk blocks it for
 * 5–45 ms. Two match the two cores this was tuned on and were fastest there.
 */
export const DEFAULT_WORKERS = 2;

/** zstd-compressed frames: one libzstd context (with its workers) reused for every frame. */
export class ZstdFrameEncoder implements FrameEncoder {
  readonly #out: BatchOutput;
  readonly #cctx: CCtx;

  constructor(out: BatchOutput, level: number, workers: number) {
    this.#out = out;
    this.#cctx = new zstd.CCtx();
    try {
      this.#cctx.setParameter(zstd.CParameter.compressionLevel, level);
      this.#cctx.setParameter(zstd.CParameter.nbWorkers, workers);
      this.#cctx.setParameter(zstd.CParameter.checksumFlag, 0);
    } catch (err) {
      throw new AirlockError('USAGE', `invalid zstd level ${level} or worker count ${workers}`, { cause: err });
    }
  }

  async begin(contentSize: number): Promise<void> {
    // Puts Frame_Content_Size in the header and lets libzstd size its window to the content.
    this.#cctx.setPledgedSrcSize(contentSize);
  }

  async write(chunk: Buffer): Promise<void> {
    await this.#run(chunk, zstd.EndDirective.continue);
  }

  async end(): Promise<void> {
    await this.#run(Buffer.alloc(0), zstd.EndDirective.end);
  }

  async #run(src: Buffer, directive: number): Promise<void> {
    let input = src;
    for (;;) {
      await this.#out.reserve();
      const [remaining, produced, consumed] = this.#cctx.compressStream2(this.#out.free(), input, directive);
      this.#out.commit(produced);
      input = input.subarray(consumed);
      if (directive === zstd.EndDirective.end ? remaining === 0 : input.length === 0) return;
    }
  }
}

/** Frames of Raw blocks: header, then the content cut into 128 KiB blocks. */
export class RawFrameEncoder implements FrameEncoder {
  readonly #out: BatchOutput;
  /** Content bytes of the frame not yet announced by a block header. */
  #unannounced = 0;
  /** Bytes still to copy into the current block. */
  #blockLeft = 0;

  constructor(out: BatchOutput) {
    this.#out = out;
  }

  async begin(contentSize: number): Promise<void> {
    await this.#out.reserve();
    this.#out.commit(writeRawFrameHeader(this.#out.free(), 0, contentSize));
    this.#unannounced = contentSize;
    this.#blockLeft = 0;
  }

  /**
   * Continue a frame whose header and first blocks are already in the file (a resumed entry cut
   * at a block boundary): `unannounced` content bytes are still to come.
   */
  resumeFrame(unannounced: number): void {
    this.#unannounced = unannounced;
    this.#blockLeft = 0;
  }

  async write(chunk: Buffer): Promise<void> {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#blockLeft === 0) {
        const size = Math.min(RAW_BLOCK_MAX, this.#unannounced);
        this.#unannounced -= size;
        await this.#out.reserve();
        this.#out.commit(writeRawBlockHeader(this.#out.free(), 0, size, this.#unannounced === 0));
        this.#blockLeft = size;
      }
      const n = Math.min(this.#blockLeft, chunk.length - pos);
      await this.#out.write(chunk.subarray(pos, pos + n));
      pos += n;
      this.#blockLeft -= n;
    }
  }

  async end(): Promise<void> {
    if (this.#blockLeft !== 0 || this.#unannounced !== 0) {
      throw new AirlockError('INTERNAL', 'raw frame ended before its announced content size');
    }
  }
}
