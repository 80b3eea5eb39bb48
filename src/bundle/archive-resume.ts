/**
 * Continue a bundle file that was cut short (`OUT.partial` after a crash, Ctrl-C or a failed
 * download) instead of writing it again: find its complete entries ({@link scanFrames}), read
 * each one back and check it against what the caller is about to write, keep the longest prefix
 * that matches, cut the file there and return a writer that appends after it.
 *
 * The file is untrusted even though airlock wrote it: a crash can leave zeros where a write had
 * not landed, and anyone could have changed it since. So every kept byte is read: its frames are
 * decoded (Raw blocks checked, zstd frames decompressed at most 1 MiB at a time and no further
 * than their recorded size), the tar header must be the one the writer would write now, the
 * padding zeros, and the data must have the planned size and sha256. (The whole-file sha256 for
 * the `.sha256` sidecar is the writer's business: its hasher reads the kept part back itself.)
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { Digest } from '../digest/digest.js';
import { fromFsError, isAirlockError } from '../errors.js';
import type { IndexEntry } from './airlock-index.js';
import { ArchiveWriter, type ArchiveWriterOptions } from './archive-writer.js';
import { READ_CHUNK, readExactly } from './file-read.js';
import { scanFrames, type ScannedEntry } from './frame-scan.js';
import { TAR_BLOCK } from './format.js';
import { encodeTarHeader } from './tar-entry.js';
import { zstd, type DCtx } from './zstd-binding.js';
import { RawFrameDecoder } from './zstd-frames.js';

/** One entry the caller will write, in archive order. */
export interface PlannedEntry {
  path: string;
  size: number;
  digest: Digest;
  /** As in `AddOptions.compress`: zstd frames (true) or Raw blocks (false). */
  compress: boolean;
}

/** Options of {@link resumeArchive}: the writer's, plus what is planned. */
export interface ResumeOptions extends ArchiveWriterOptions {
  /** Every entry the caller will write, in order: the kept prefix is the first N of these. */
  planned: readonly PlannedEntry[];
  signal?: AbortSignal | undefined;
  /** Called with the number of file bytes checked, as they are read (progress). */
  onBytes?: ((n: number) => void) | undefined;
}

/** What {@link resumeArchive} kept. */
export interface ResumedArchive {
  /** Positioned after the kept entries; add `planned[kept]` next. */
  writer: ArchiveWriter;
  /** Number of planned entries already in the file. */
  kept: number;
  /** File bytes kept. */
  keptBytes: number;
  /** Data bytes of the kept entries (what need not be fetched again). */
  reusedBytes: number;
  /** Why the prefix ends where it does, for messages. */
  stopped: string;
}

/**
 * Output buffer per decompression step: 1 MiB, so a hostile frame cannot inflate further ahead
 * than that before its recorded size is checked.
 */
const DECODE_CHUNK = 1 << 20;

/**
 * Keep the longest prefix of `path` that holds exactly `opts.planned[0…N-1]` and continue it.
 *
 * @example
 * const { writer, kept } = await resumeArchive('out.tar.zst.partial', { mtime, planned });
 * for (const e of planned.slice(kept)) await writer.addBuffer(e.path, bytesOf(e), { compress: e.compress });
 * await writer.finish();
 * @throws IO when the file cannot be read or written; damage only shortens the prefix
 */
export async function resumeArchive(path: string, opts: ResumeOptions): Promise<ResumedArchive> {
  const scan = await scanFrames(path, { signal: opts.signal });
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw fromFsError(err, path, 'opening');
  }
  const kept: IndexEntry[] = [];
  let keptBytes = 0;
  let reusedBytes = 0;
  let stopped = scan.stopped;
  try {
    const checker = new EntryChecker(fh, path, opts);
    for (let i = 0; i < scan.entries.length; i++) {
      const found = scan.entries[i]!;
      const planned = opts.planned[i];
      const problem = planned === undefined ? `${found.path} is not planned there` : await checker.check(found, planned);
      if (problem !== undefined) {
        stopped = problem;
        break;
      }
      kept.push(withoutFrames(found));
      keptBytes += found.frameSizes.reduce((n, f) => n + f.compressedSize, 0);
      reusedBytes += found.size;
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
  const frames = scan.entries.slice(0, kept.length).flatMap((e) => e.frameSizes);
  const writer = await ArchiveWriter.append(path, opts, { bytes: keptBytes, entries: kept, frames });
  return { writer, kept: kept.length, keptBytes, reusedBytes, stopped };
}

function withoutFrames(e: ScannedEntry): IndexEntry {
  return { path: e.path, size: e.size, offset: e.offset, frames: e.frames, dataOffset: e.dataOffset, encoding: e.encoding };
}

/** Reads entries back, checking them against the plan; see the module comment. */
class EntryChecker {
  readonly #fh: FileHandle;
  readonly #path: string;
  readonly #opts: ResumeOptions;
  readonly #buf = Buffer.allocUnsafe(READ_CHUNK);
  /** Decompression output, reused: the sink consumes each piece before the next step. */
  readonly #dst = Buffer.allocUnsafe(DECODE_CHUNK);
  #dctx: DCtx | undefined;

  constructor(fh: FileHandle, path: string, opts: ResumeOptions) {
    this.#fh = fh;
    this.#path = path;
    this.#opts = opts;
  }

  /** Why `found` is not `planned`, or undefined when it is. */
  async check(found: ScannedEntry, planned: PlannedEntry): Promise<string | undefined> {
    if (found.path !== planned.path) return `${found.path} found where ${planned.path} was planned`;
    if (found.size !== planned.size) return `${found.path} has ${found.size} bytes, ${planned.size} planned`;
    if ((found.encoding === 'zstd') !== planned.compress) return `${found.path} is stored as ${found.encoding}, not as planned`;
    const sink = new ContentSink(encodeTarHeader(planned.path, planned.size, this.#opts.mtime), planned.size);
    let pos = found.offset;
    try {
      for (const frame of found.frameSizes) {
        const decode = this.#decoder(found.encoding === 'raw');
        let left = frame.compressedSize;
        let out = 0;
        while (left > 0) {
          this.#opts.signal?.throwIfAborted();
          const chunk = await readExactly(this.#fh, Math.min(left, READ_CHUNK), pos, this.#path, this.#buf);
          pos += chunk.length;
          left -= chunk.length;
          out += decode.push(chunk, left === 0, frame.decompressedSize - out, (piece) => sink.write(piece));
          this.#opts.onBytes?.(chunk.length);
        }
        if (out !== frame.decompressedSize) return `${found.path}: a frame holds less than its recorded size`;
      }
    } catch (err) {
      // Damage (a bad block, a short file) ends the prefix; an aborted run or a failing disk does not.
      if (this.#opts.signal?.aborted === true || (isAirlockError(err) && err.code !== 'INTEGRITY')) throw err;
      return `${found.path} is damaged (${(err as Error).message})`;
    }
    const problem = sink.problem();
    if (problem !== undefined) return `${found.path}: ${problem}`;
    const digest = `sha256:${sink.hash.digest('hex')}`;
    return digest === planned.digest ? undefined : `${found.path} has digest ${digest}, ${planned.digest} planned`;
  }

  #decoder(raw: boolean): FrameDecode {
    if (raw) {
      const dec = new RawFrameDecoder();
      return {
        push: (chunk, last, budget, emit) => {
          let n = 0;
          for (const piece of dec.push(chunk)) {
            n += piece.length;
            if (n > budget) throw new Error('a frame holds more than its recorded size');
            emit(piece);
          }
          if (last) dec.finish();
          return n;
        },
      };
    }
    const dctx = (this.#dctx ??= new zstd.DCtx());
    dctx.reset(zstd.ResetDirective.sessionOnly);
    return {
      push: (chunk, last, budget, emit) => {
        const dst = this.#dst;
        let n = 0;
        let src = chunk;
        let ret = 1;
        for (;;) {
          let produced: number;
          let consumed: number;
          [ret, produced, consumed] = dctx.decompressStream(dst, src);
          src = src.subarray(consumed);
          n += produced;
          if (n > budget) throw new Error('a frame holds more than its recorded size');
          if (produced > 0) emit(dst.subarray(0, produced));
          if (ret === 0 && src.length > 0) throw new Error('data after the end of a frame');
          // A full output buffer may mean more output is waiting inside libzstd.
          if (src.length === 0 && produced < DECODE_CHUNK) break;
        }
        if (last && ret !== 0) throw new Error('the frame is incomplete');
        if (!last && ret === 0) throw new Error('the frame ends before its recorded size');
        return n;
      },
    };
  }
}

/** Decodes one frame's bytes in any chunking; `push` returns the content bytes it emitted. */
interface FrameDecode {
  /** Decode `chunk` (`last`: the frame's final bytes); more than `budget` content bytes is damage. */
  push(chunk: Buffer, last: boolean, budget: number, emit: (piece: Buffer) => void): number;
}

/** The entry's tar content as it is decoded: header compared, data hashed, padding checked. */
class ContentSink {
  readonly hash = createHash('sha256');
  readonly #header: Buffer;
  readonly #size: number;
  #content = 0;
  #badHeader = false;
  #badPadding = false;

  constructor(header: Buffer, size: number) {
    this.#header = header;
    this.#size = size;
  }

  write(piece: Buffer): void {
    let p = piece;
    if (this.#content < TAR_BLOCK) {
      const n = Math.min(TAR_BLOCK - this.#content, p.length);
      if (!p.subarray(0, n).equals(this.#header.subarray(this.#content, this.#content + n))) this.#badHeader = true;
      this.#content += n;
      p = p.subarray(n);
    }
    const dataLeft = TAR_BLOCK + this.#size - this.#content;
    if (dataLeft > 0 && p.length > 0) {
      const data = p.length <= dataLeft ? p : p.subarray(0, dataLeft);
      this.hash.update(data);
      this.#content += data.length;
      p = p.subarray(data.length);
    }
    if (p.length > 0) {
      if (p.some((b) => b !== 0)) this.#badPadding = true;
      this.#content += p.length;
    }
  }

  problem(): string | undefined {
    if (this.#badHeader) return 'its tar header differs from the one planned (another creation time?)';
    if (this.#badPadding) return 'its tar padding is not zeros';
    return undefined;
  }
}
