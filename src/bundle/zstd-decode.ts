/**
 * Streaming zstd decompression that respects backpressure. zstd-napi's DecompressStream pushes
 * everything one input chunk inflates to, whatever the consumer's pace: 1 MiB of hostile RLE
 * blocks can inflate to gigabytes. Here each step produces at most 1 MiB and waits for the
 * consumer (an async generator only resumes when the next value is wanted).
 */
import { zstd } from './zstd-binding.js';

/** Output per decompression step: 1 MiB (results under a quarter of it are copied out). */
const STEP = 1 << 20;

/** The input ended inside a zstd frame: the file is truncated. */
export class ZstdTruncatedError extends Error {
  constructor() {
    super('zstd data ends inside a frame');
    this.name = 'ZstdTruncatedError';
  }
}

/**
 * Decompress a sequence of zstd frames (skippable frames are skipped). libzstd's errors (bad
 * magic, corrupt block, window too large) are thrown as they come.
 *
 * @throws ZstdTruncatedError when the input ends inside a frame
 */
export async function* decompressFrames(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const dctx = new zstd.DCtx();
  let inFrame = false;
  for await (const chunk of source) {
    let src = chunk;
    let pending = true;
    while (src.length > 0 || pending) {
      const dst = Buffer.allocUnsafe(STEP);
      const [ret, produced, consumed] = dctx.decompressStream(dst, src);
      src = src.subarray(consumed);
      inFrame = ret !== 0;
      // A full output buffer may mean more output is waiting inside libzstd.
      pending = produced === STEP;
      if (produced > 0) yield produced < STEP / 4 ? Buffer.from(dst.subarray(0, produced)) : dst.subarray(0, produced);
    }
  }
  if (inFrame) throw new ZstdTruncatedError();
}
