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
 *
 * With `continuePartial`, the entry after the kept ones may be kept in part, inside a blob: when it
 * is stored in Raw blocks (a gzip/zstd layer, usually the large ones), the blocks are written in a
 * fixed layout (frame and block headers depend only on the sizes), so the complete blocks that
 * made it to the file are kept, and the writer continues the same frame with the rest of the
 * blob, fetched from where they end. Their data is hashed here, as it is read back, and the
 * caller hashes on from that state: the blob's digest is still checked over all of its bytes.
 * zstd-compressed entries start again (a compressor's state cannot be restored).
 */
import { createHash, type Hash } from 'node:crypto';
import type { Digest } from '../digest/digest.js';
import { isAirlockError } from '../errors.js';
import type { EntryEncoding, IndexEntry } from './airlock-index.js';
import { ArchiveWriter, type ArchiveWriterOptions, type PartialEntry } from './archive-writer.js';
import { openForReading, READ_CHUNK, readExactly, type RandomAccessFile } from './file-read.js';
import { keptParts } from './parted-output.js';
import { scanFrames, type ScannedEntry } from './frame-scan.js';
import { MAX_FRAME_CONTENT, TAR_BLOCK } from './format.js';
import type { SeekFrame } from './seek-table.js';
import { encodeTarHeader, tarEntrySize } from './tar-entry.js';
import { frameDecoder, ZstdDecodeError, type FrameDecoder } from './zstd-decode.js';
import { BLOCK_HEADER_SIZE, RAW_BLOCK_MAX, RAW_FRAME_HEADER_SIZE, writeRawBlockHeader, writeRawFrameHeader } from './zstd-frames.js';

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
  /**
   * Keep the complete Raw blocks of a partly written next entry too (see the module comment); the
   * caller then continues it with `ArchiveWriter.continueStream`. Default false.
   */
  continuePartial?: boolean | undefined;
}

/** The part of `planned[kept]` already in the file, when {@link ResumeOptions.continuePartial} kept one. */
export interface KeptPart {
  /** Data bytes of the blob kept: fetch from this offset on. */
  dataBytes: number;
  /** sha256 over those bytes, to be updated with the rest and then checked against the digest. */
  hash: Hash;
  /** Where the entry starts in the file: cut there to drop the part again. */
  offset: number;
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
  /** The kept part of the next entry, if any. */
  part?: KeptPart;
}

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
  // A split set is read back as one file: the parts that make a contiguous start of it.
  const source = opts.split === undefined ? path : await keptParts(path, opts.split);
  const scan = await scanFrames(source, { signal: opts.signal });
  const fh = await openForReading(source);
  const kept: IndexEntry[] = [];
  let keptBytes = 0;
  let reusedBytes = 0;
  let stopped = scan.stopped;
  let partial: PartialRead | undefined;
  try {
    const checker = new EntryChecker(fh, path, opts);
    let complete = true;
    for (let i = 0; i < scan.entries.length; i++) {
      const found = scan.entries[i]!;
      const planned = opts.planned[i];
      const problem = planned === undefined ? `${found.path} is not planned there` : await checker.check(found, planned);
      if (problem !== undefined) {
        stopped = problem;
        complete = false;
        break;
      }
      kept.push(withoutFrames(found));
      keptBytes += found.frameSizes.reduce((n, f) => n + f.compressedSize, 0);
      reusedBytes += found.size;
    }
    const next = opts.planned[kept.length];
    if (opts.continuePartial === true && complete && next !== undefined && !next.compress) {
      const tarOffset = kept.reduce((n, e) => n + tarEntrySize(e.size), 0);
      partial = await checker.readPartial(next, keptBytes, scan.fileSize, tarOffset);
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
  const frames = scan.entries.slice(0, kept.length).flatMap((e) => e.frameSizes);
  const writer = await ArchiveWriter.append(path, opts, {
    bytes: keptBytes + (partial?.entry.bytes ?? 0),
    entries: kept,
    frames,
    ...(partial === undefined ? {} : { partial: partial.entry }),
  });
  if (partial === undefined) return { writer, kept: kept.length, keptBytes, reusedBytes, stopped };
  const part: KeptPart = { dataBytes: partial.dataBytes, hash: partial.hash, offset: keptBytes };
  return { writer, kept: kept.length, keptBytes: keptBytes + partial.entry.bytes, reusedBytes: reusedBytes + partial.dataBytes, stopped, part };
}

/** What {@link EntryChecker.readPartial} kept of a partly written entry. */
interface PartialRead {
  entry: PartialEntry;
  dataBytes: number;
  hash: Hash;
}

function withoutFrames(e: ScannedEntry): IndexEntry {
  return { path: e.path, size: e.size, offset: e.offset, frames: e.frames, dataOffset: e.dataOffset, encoding: e.encoding };
}

/** Reads entries back, checking them against the plan; see the module comment. */
class EntryChecker {
  readonly #fh: RandomAccessFile;
  readonly #path: string;
  readonly #opts: ResumeOptions;
  readonly #buf = Buffer.allocUnsafe(READ_CHUNK);
  #zstd: FrameDecoder | undefined;

  constructor(fh: RandomAccessFile, path: string, opts: ResumeOptions) {
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
    const decoder = this.#decoder(found.encoding);
    let pos = found.offset;
    try {
      for (const frame of found.frameSizes) {
        decoder.reset(frame.decompressedSize);
        let left = frame.compressedSize;
        while (left > 0) {
          this.#opts.signal?.throwIfAborted();
          const chunk = await readExactly(this.#fh, Math.min(left, READ_CHUNK), pos, this.#path, this.#buf);
          pos += chunk.length;
          left -= chunk.length;
          // The sink is done with each piece before the next is decoded (into the same buffer).
          for (const piece of decoder.decode(chunk)) sink.write(piece);
          this.#opts.onBytes?.(chunk.length);
        }
        decoder.end();
        if (decoder.outputBytes !== frame.decompressedSize) return `${found.path}: a frame holds less than its recorded size`;
      }
    } catch (err) {
      // Damage (a bad block, a short file) ends the prefix; an aborted run or a failing disk does not.
      if (this.#opts.signal?.aborted === true || (isAirlockError(err) && err.code !== 'INTEGRITY')) throw err;
      return `${found.path} is damaged (${damage(err)})`;
    }
    const problem = sink.problem();
    if (problem !== undefined) return `${found.path}: ${problem}`;
    const digest = `sha256:${sink.hash.digest('hex')}`;
    return digest === planned.digest ? undefined : `${found.path} has digest ${digest}, ${planned.digest} planned`;
  }

  /**
   * The complete Raw blocks of `planned`, written from `offset` on, as long as every frame and
   * block header is exactly the one the writer writes for this entry, the tar header is the
   * planned one, and at least one byte of the blob is still to come. Undefined when nothing of
   * it can be kept.
   */
  async readPartial(planned: PlannedEntry, offset: number, fileSize: number, tarOffset: number): Promise<PartialRead | undefined> {
    const maxFrame = this.#opts.maxFrameContent ?? MAX_FRAME_CONTENT;
    const total = tarEntrySize(planned.size);
    /** Keep content only below this: the writer must still have data to add. */
    const limit = TAR_BLOCK + planned.size;
    const sink = new ContentSink(encodeTarHeader(planned.path, planned.size, this.#opts.mtime), planned.size);
    const frames: SeekFrame[] = [];
    const expect = Buffer.alloc(RAW_FRAME_HEADER_SIZE);
    /** End of the last complete block kept. */
    let end = offset;
    let content = 0;
    let open: PartialEntry['open'];
    frames: while (content < limit) {
      const frameContent = Math.min(maxFrame, total - content);
      const start = end;
      if (start + RAW_FRAME_HEADER_SIZE > fileSize) break;
      writeRawFrameHeader(expect, 0, frameContent);
      if (!(await this.#read(RAW_FRAME_HEADER_SIZE, start)).equals(expect)) break;
      let inFrame = 0;
      let blocksPos = start + RAW_FRAME_HEADER_SIZE;
      while (inFrame < frameContent) {
        this.#opts.signal?.throwIfAborted();
        const size = Math.min(RAW_BLOCK_MAX, frameContent - inFrame);
        if (content + size >= limit || blocksPos + BLOCK_HEADER_SIZE + size > fileSize) break frames;
        const head = await this.#read(BLOCK_HEADER_SIZE, blocksPos);
        writeRawBlockHeader(expect, 0, size, inFrame + size === frameContent);
        if (!head.equals(expect.subarray(0, BLOCK_HEADER_SIZE))) break frames;
        const body = await this.#read(size, blocksPos + BLOCK_HEADER_SIZE);
        sink.write(body);
        if (content + size >= TAR_BLOCK && sink.problem() !== undefined) return undefined;
        this.#opts.onBytes?.((inFrame === 0 ? RAW_FRAME_HEADER_SIZE : 0) + BLOCK_HEADER_SIZE + size);
        blocksPos += BLOCK_HEADER_SIZE + size;
        end = blocksPos;
        inFrame += size;
        content += size;
        open = { start, contentSize: frameContent, contentDone: inFrame };
        if (inFrame === frameContent) {
          frames.push({ compressedSize: blocksPos - start, decompressedSize: frameContent });
          open = undefined;
        }
      }
    }
    if (content < TAR_BLOCK) return undefined;
    const bytes = end - offset;
    const entry: PartialEntry = {
      entry: { path: planned.path, size: planned.size, offset, frames: 0, dataOffset: tarOffset + TAR_BLOCK, encoding: 'raw' },
      frames,
      ...(open === undefined ? {} : { open }),
      content,
      bytes,
    };
    return { entry, dataBytes: content - TAR_BLOCK, hash: sink.hash };
  }

  /** `n` bytes at `pos` (a fresh buffer when larger than the reusable one). */
  async #read(n: number, pos: number): Promise<Buffer> {
    return readExactly(this.#fh, n, pos, this.#path, n <= this.#buf.length ? this.#buf : undefined);
  }

  /** The decoder for frames stored as `encoding`; the libzstd one is kept for the next entry. */
  #decoder(encoding: EntryEncoding): FrameDecoder {
    if (encoding === 'raw') return frameDecoder('raw');
    return (this.#zstd ??= frameDecoder('zstd', { reuseOutput: true, signal: this.#opts.signal }));
  }
}

/** What is wrong, for the reason the prefix stops. */
function damage(err: unknown): string {
  if (!(err instanceof ZstdDecodeError)) return (err as Error).message;
  switch (err.reason) {
    case 'too-large':
      return 'a frame holds more than its recorded size';
    case 'trailing-data':
      return 'data after the end of a frame';
    case 'truncated':
      return 'the frame is incomplete';
    case 'corrupt':
      return err.message;
  }
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
