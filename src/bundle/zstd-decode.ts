/**
 * The one zstd decoder every reader of an archive goes through: the entry reader (import,
 * verify), the whole-file pass of `bundle verify`, the head reader, the frame check and frame scan
 * (a tar header out of a frame's first bytes) and the resume check of a cut `.partial`.
 *
 * A {@link FrameDecoder} is fed the compressed bytes in any chunking and hands out the content as
 * it is decoded, one step at a time: `decode(chunk)` is a generator, and libzstd is only asked for
 * the next step when the consumer asks for the next piece. So a hostile frame (1 MiB of RLE blocks
 * can claim gigabytes) never inflates more than one step ahead of whoever reads it, and
 * `maxOutput` stops it outright where the caller knows how much a frame holds.
 *
 * The end-of-output rule lives here and nowhere else. libzstd's `decompressStream` returns what
 * it wrote, what it consumed and a hint that is 0 once a frame is complete and fully flushed. More
 * output can be waiting inside libzstd only while a frame is unfinished and the output buffer came
 * back full; once the hint is 0 nothing is pending, and calling again without input would only
 * ask for the next frame's header, which looks like a frame that has begun. (Re-deriving this in
 * five places got it wrong: an entry whose frame decodes to exactly one 1 MiB step read as
 * "incomplete".)
 *
 * Failures are {@link ZstdDecodeError}s with a `reason` the callers turn into their own messages.
 */
import type { EntryEncoding } from './airlock-index.js';
import { zstd, type DCtx } from './zstd-binding.js';
import { RawFrameDecoder } from './zstd-frames.js';

/**
 * Output per decompression step: 1 MiB. A piece under a quarter of it is copied out, so a small
 * result does not pin a whole step buffer while it waits downstream; larger ones are handed on as
 * views of the step buffer, without a copy.
 */
export const DECODE_STEP = 1 << 20;

/**
 * Why decoding failed:
 * - `corrupt`: libzstd refused the data (bad magic, damaged block, window too large), or a
 *   Raw-block frame is not laid out as airlock writes it (any departure, a cut one included);
 * - `truncated`: the input ended inside a frame;
 * - `trailing-data`: a single-frame decoder got bytes after its frame ended;
 * - `too-large`: more output than `maxOutput`.
 */
export type ZstdFailure = 'corrupt' | 'truncated' | 'trailing-data' | 'too-large';

/** A failure of a {@link FrameDecoder}; see {@link ZstdFailure}. */
export class ZstdDecodeError extends Error {
  readonly reason: ZstdFailure;

  constructor(reason: ZstdFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ZstdDecodeError';
    this.reason = reason;
  }
}

/** Options of {@link ZstdDecoder} and {@link frameDecoder}. */
export interface DecoderOptions {
  /**
   * `many` (default): a sequence of frames, as in a whole archive (libzstd steps over skippable
   * frames). `one`: the input is exactly one frame, as in one seek-table range; bytes after it are
   * `trailing-data`, and `end()` before it is complete is `truncated`. (A skippable frame counts as
   * a frame here too: a caller that must refuse one checks the magic first.)
   */
  frames?: 'one' | 'many';
  /** Most output per step, in bytes; default {@link DECODE_STEP}. */
  step?: number;
  /**
   * Decode every step into one buffer: each piece is then valid only until the next one is asked
   * for. For consumers that are done with a piece when they ask for the next (hashing, comparing).
   * Default false: every piece is a buffer of its own, safe to queue.
   */
  reuseOutput?: boolean;
  /** Most output accepted since the decoder was made or last reset; more is `too-large`. */
  maxOutput?: number;
  /** Checked before every step: an abort stops even a consumer that keeps asking. */
  signal?: AbortSignal | undefined;
}

/** Decodes zstd input fed in any chunking; see the module comment. */
export interface FrameDecoder {
  /**
   * Decode `input`, yielding content pieces as they are produced. The generator must be run to
   * its end (or abandoned together with the decoder) before the next call.
   *
   * @throws ZstdDecodeError `corrupt`, `trailing-data` or `too-large`
   */
  decode(input: Buffer): Generator<Buffer, void, undefined>;
  /**
   * The input is over: throw unless it ended between frames (`many`) or after the frame (`one`).
   *
   * @throws ZstdDecodeError `truncated` (for a Raw-block frame: `corrupt`, naming what is missing)
   */
  end(): void;
  /**
   * Forget the input so far and start on a new frame, keeping the buffers; `maxOutput` replaces
   * the limit given at construction (for a frame whose size is known).
   */
  reset(maxOutput?: number): void;
  /** Content bytes produced since the decoder was made or last reset. */
  readonly outputBytes: number;
}

/** libzstd's streaming decompression under the rule in the module comment. */
export class ZstdDecoder implements FrameDecoder {
  readonly #dctx: DCtx = new zstd.DCtx();
  readonly #one: boolean;
  readonly #step: number;
  readonly #shared: Buffer | undefined;
  readonly #maxDefault: number;
  #max: number;
  readonly #signal: AbortSignal | undefined;
  /** Inside a frame: the last call returned a non-zero hint. */
  #inFrame = false;
  /** Single-frame mode: the frame is complete. */
  #done = false;
  #out = 0;

  constructor(opts: DecoderOptions = {}) {
    this.#one = opts.frames === 'one';
    this.#step = opts.step ?? DECODE_STEP;
    this.#shared = opts.reuseOutput === true ? Buffer.allocUnsafe(this.#step) : undefined;
    this.#maxDefault = opts.maxOutput ?? Number.POSITIVE_INFINITY;
    this.#max = this.#maxDefault;
    this.#signal = opts.signal;
  }

  get outputBytes(): number {
    return this.#out;
  }

  *decode(input: Buffer): Generator<Buffer, void, undefined> {
    let src = input;
    if (src.length > 0 && this.#done) throw trailing();
    let more = src.length > 0;
    while (more) {
      this.#signal?.throwIfAborted();
      const dst = this.#shared ?? Buffer.allocUnsafe(this.#step);
      let hint: number;
      let produced: number;
      let consumed: number;
      try {
        [hint, produced, consumed] = this.#dctx.decompressStream(dst, src);
      } catch (err) {
        // libzstd reports damage as a plain Error ("Data corruption detected").
        throw new ZstdDecodeError('corrupt', (err as Error).message, { cause: err });
      }
      src = src.subarray(consumed);
      this.#inFrame = hint !== 0;
      if (hint === 0 && this.#one) {
        // libzstd would go on into a second frame, or step over a skippable one.
        this.#done = true;
        if (src.length > 0) throw trailing();
      }
      this.#out += produced;
      if (this.#out > this.#max) throw tooLarge(this.#max);
      more = src.length > 0 || (hint !== 0 && produced === dst.length);
      if (produced === 0) continue;
      if (this.#shared !== undefined || produced >= this.#step / 4) yield dst.subarray(0, produced);
      else yield Buffer.from(dst.subarray(0, produced));
    }
  }

  end(): void {
    if (this.#one ? !this.#done : this.#inFrame) throw new ZstdDecodeError('truncated', 'zstd data ends inside a frame');
  }

  reset(maxOutput?: number): void {
    this.#dctx.reset(zstd.ResetDirective.sessionOnly);
    this.#max = maxOutput ?? this.#maxDefault;
    this.#inFrame = false;
    this.#done = false;
    this.#out = 0;
  }
}

/**
 * One frame of airlock's Raw-block layout, unwrapped without libzstd (see zstd-frames.ts): the
 * pieces are views of the input, so they live as long as the caller keeps its input.
 */
class RawBlockDecoder implements FrameDecoder {
  readonly #maxDefault: number;
  #max: number;
  #raw = new RawFrameDecoder();
  #out = 0;

  constructor(opts: DecoderOptions) {
    this.#maxDefault = opts.maxOutput ?? Number.POSITIVE_INFINITY;
    this.#max = this.#maxDefault;
  }

  get outputBytes(): number {
    return this.#out;
  }

  *decode(input: Buffer): Generator<Buffer, void, undefined> {
    const pieces = asCorrupt(() => this.#raw.push(input));
    // A chunk inflates to at most its own size: check the whole of it before handing any on.
    for (const p of pieces) this.#out += p.length;
    if (this.#out > this.#max) throw tooLarge(this.#max);
    yield* pieces;
  }

  end(): void {
    asCorrupt(() => this.#raw.finish());
  }

  reset(maxOutput?: number): void {
    this.#raw = new RawFrameDecoder();
    this.#max = maxOutput ?? this.#maxDefault;
    this.#out = 0;
  }
}

/**
 * A single-frame decoder for one seek-table frame of an entry stored as `encoding`: libzstd for
 * `zstd`, the Raw-block unwrapper for `raw`.
 */
export function frameDecoder(encoding: EntryEncoding, opts: Omit<DecoderOptions, 'frames'> = {}): FrameDecoder {
  return encoding === 'raw' ? new RawBlockDecoder(opts) : new ZstdDecoder({ ...opts, frames: 'one' });
}

/**
 * Decompress a stream of zstd frames (skippable frames are skipped), one step at a time: the next
 * step is decoded only when the consumer wants it, and the next input chunk is asked for only once
 * libzstd has consumed the previous one (so the source may reuse its buffer).
 *
 * @throws ZstdDecodeError `corrupt`, or `truncated` when the input ends inside a frame
 */
export async function* decompressFrames(source: AsyncIterable<Buffer>, opts: { signal?: AbortSignal } = {}): AsyncGenerator<Buffer> {
  const decoder = new ZstdDecoder({ signal: opts.signal });
  for await (const chunk of source) yield* decoder.decode(chunk);
  decoder.end();
}

/**
 * The first `n` bytes that `input` (the start of a frame) decodes to, or undefined when it is
 * not valid zstd or ends before `n` bytes come out. Reads no more of `input` than it needs, and
 * does not look past those bytes: whoever reads the frame whole checks the rest. Pass a decoder
 * made with `{ step: n, reuseOutput: true }` to reuse it across calls (it is reset first).
 */
export async function decodePrefix(
  input: AsyncIterable<Buffer>,
  n: number,
  decoder: FrameDecoder = new ZstdDecoder({ step: n, reuseOutput: true }),
): Promise<Buffer | undefined> {
  decoder.reset();
  const out = Buffer.alloc(n);
  let have = 0;
  try {
    for await (const chunk of input) {
      for (const piece of decoder.decode(chunk)) {
        have += piece.copy(out, have);
        if (have === n) return out;
      }
    }
  } catch (err) {
    if (err instanceof ZstdDecodeError) return undefined;
    throw err;
  }
  return undefined;
}

/** Run a RawFrameDecoder call, its INTEGRITY errors (messages kept) as `corrupt`. */
function asCorrupt<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new ZstdDecodeError('corrupt', (err as Error).message, { cause: err });
  }
}

function trailing(): ZstdDecodeError {
  return new ZstdDecodeError('trailing-data', 'data after the end of the frame');
}

function tooLarge(max: number): ZstdDecodeError {
  return new ZstdDecodeError('too-large', `the frame decodes to more than ${max} bytes`);
}
