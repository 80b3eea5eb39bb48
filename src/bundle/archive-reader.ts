/**
 * Random access to a bundle file: the seek table and airlock index are read from its tail and
 * checked against each other and the file size, then any entry can be streamed on its own by
 * reading only its frames. Several entries may be read at once (positional reads share the file).
 */
import type { Readable } from 'node:stream';
import { AirlockError } from '../errors.js';
import { decodeIndex, locateEntries, MAX_INDEX_BYTES, type IndexEntry, type LocatedEntry } from './airlock-index.js';
import { EntryReadable, isZeros } from './entry-reader.js';
import { checkFrames } from './frame-check.js';
import { openForReading, readExactly, type RandomAccessFile } from './file-read.js';
import { explainSetEnd, locationName, type ArchiveLocation } from './split-set.js';
import { PartedFile } from './parted-file.js';
import { INDEX_BYTES_PER_ENTRY, type ArchiveLimits } from './archive-limits.js';
import { AIRLOCK_INDEX_MAGIC, notABundle, TAR_END_SIZE, ZSTD_FRAME_MAGIC } from './format.js';

/** Largest tar end frame read: 4 KiB (libzstd writes the 1024 zero bytes in about 20, a Raw-block frame in 1037). */
const MAX_END_FRAME_BYTES = 4096;
import { decodeSeekTable, parseSeekFooter, SEEK_FOOTER_SIZE, type SeekFrame } from './seek-table.js';
import { ZstdDecoder, ZstdDecodeError } from './zstd-decode.js';

export type { IndexEntry } from './airlock-index.js';

/**
 * The tail lists more than the signed manifest can account for: refused before it is read, so
 * that a hostile table cannot make a reader allocate per frame or per entry. `details.bound` tells
 * verify that a sequential pass to name damaged entries is pointless (the archive is not damaged,
 * it is padded with content nobody signed).
 */
function tooLarge(path: string, why: string): AirlockError {
  return new AirlockError('INTEGRITY', `${path}: ${why}`, {
    subject: path,
    details: { bound: true },
    hint: 'the archive holds content the signed manifest does not list: do not import it; get an intact copy from its creator',
  });
}

/** An open bundle file, read by entry. Close it when done. */
/** Options of {@link ArchiveReader.openEntry}. */
export interface EntryReadOptions {
  /** Called with the size of every piece of data as it is handed out (progress), without a stream stage. */
  onBytes?: ((n: number) => void) | undefined;
}

export class ArchiveReader {
  readonly path: string;
  /** Size of the bundle file in bytes. */
  readonly size: number;
  readonly #fh: RandomAccessFile;
  readonly #frames: readonly SeekFrame[];
  readonly #entries: readonly LocatedEntry[];
  readonly #byPath: ReadonlyMap<string, LocatedEntry>;

  readonly #endFrameAt: number;

  private constructor(path: string, size: number, fh: RandomAccessFile, frames: SeekFrame[], entries: LocatedEntry[], endFrameAt: number) {
    this.#endFrameAt = endFrameAt;
    this.path = path;
    this.size = size;
    this.#fh = fh;
    this.#frames = frames;
    this.#entries = entries;
    this.#byPath = new Map(entries.map((e) => [e.path, e]));
  }

  /**
   * Open a bundle and read its seek table and index. Anything inconsistent (sizes, offsets,
   * counts) is INTEGRITY "not an airlock bundle or truncated".
   *
   * @example
   * const reader = await ArchiveReader.open('images.tar.zst');
   * try { await pipeline(reader.openEntry('index.json'), verifier, sink); } finally { await reader.close(); }
   */
  static async open(loc: ArchiveLocation, limits?: ArchiveLimits): Promise<ArchiveReader> {
    const path = locationName(loc);
    const fh = await openForReading(loc);
    try {
      const { size } = await fh.stat();
      if (size < SEEK_FOOTER_SIZE) throw notABundle(path, 'file too small');
      const footer = await readExactly(fh, SEEK_FOOTER_SIZE, size - SEEK_FOOTER_SIZE, path);
      const { frames: count, tableSize } = parseSeekFooter(footer, size, path);
      if (limits !== undefined && count > limits.frames) {
        throw tooLarge(path, `the seek table lists ${count} frames; the signed manifest accounts for at most ${limits.frames}`);
      }
      const frames = decodeSeekTable(await readExactly(fh, tableSize, size - tableSize, path), size, path);
      const indexFrame = frames[frames.length - 1]!;
      const maxIndex = limits === undefined ? MAX_INDEX_BYTES : Math.min(MAX_INDEX_BYTES, limits.entries * INDEX_BYTES_PER_ENTRY);
      if (indexFrame.compressedSize < 8 || indexFrame.compressedSize > maxIndex + 8) {
        throw limits === undefined || indexFrame.compressedSize < 8
          ? notABundle(path, 'implausible index size')
          : tooLarge(path, `the index frame is ${indexFrame.compressedSize} bytes, more than the ${limits.entries} entries of the signed manifest can take`);
      }
      const indexBytes = await readExactly(fh, indexFrame.compressedSize, size - tableSize - indexFrame.compressedSize, path);
      if (indexBytes.readUInt32LE(0) !== AIRLOCK_INDEX_MAGIC || indexBytes.readUInt32LE(4) !== indexBytes.length - 8) {
        throw notABundle(path, 'no airlock index before the seek table');
      }
      const indexed = decodeIndex(indexBytes.subarray(8), path);
      if (limits !== undefined && indexed.length > limits.entries) {
        throw tooLarge(path, `the index lists ${indexed.length} entries; the signed manifest accounts for at most ${limits.entries}`);
      }
      const entries = locateEntries(indexed, frames, path, { exactSplit: limits !== undefined });
      const endFrameAt = size - tableSize - indexFrame.compressedSize - frames[frames.length - 2]!.compressedSize;
      return new ArchiveReader(path, size, fh, frames, entries, endFrameAt);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw fh instanceof PartedFile ? explainSetEnd(fh.set, err) : err;
    }
  }

  /** Every entry, in archive order. */
  entries(): IndexEntry[] {
    return this.#entries.map(({ firstFrame: _, ...e }) => e);
  }

  /** The index record of `name`, or undefined. */
  entry(name: string): IndexEntry | undefined {
    const e = this.#byPath.get(name);
    if (e === undefined) return undefined;
    const { firstFrame: _, ...rest } = e;
    return rest;
  }

  /**
   * Stream exactly the data of entry `name` (no tar header, no padding), reading only its frames.
   * Unverified: pipe it through a VerifyingStream with the digest and size from bundle.json.
   *
   * @throws INTEGRITY when the bundle has no such entry
   */
  openEntry(name: string, opts: EntryReadOptions = {}): Readable {
    const entry = this.#byPath.get(name);
    if (entry === undefined) {
      throw new AirlockError('INTEGRITY', `${this.path}: bundle has no entry ${name}`, {
        subject: name,
        hint: 'the bundle is incomplete or was not written by airlock',
      });
    }
    return new EntryReadable(this.#fh, this.path, entry, this.#frames, opts.onBytes);
  }

  /**
   * Look at every entry's frames and tar header without reading the content (frame-check.ts):
   * cheap enough for import to run before it writes anything.
   *
   * @throws INTEGRITY naming the entry and what is wrong
   */
  async checkFrames(signal?: AbortSignal): Promise<void> {
    await checkFrames(this.#fh, this.path, this.#entries, this.#frames, signal);
  }

  /**
   * Check the tar end frame: exactly one zstd frame holding the 1024 zero bytes of the tar end
   * marker. Nothing reads it by entry, but a tar reader of the whole stream does: anything else
   * there would be more tar entries that no index lists.
   *
   * @throws INTEGRITY naming what is wrong
   */
  async checkEnd(): Promise<void> {
    const frame = this.#frames[this.#frames.length - 2]!;
    const bad = (why: string): AirlockError =>
      new AirlockError('INTEGRITY', `${this.path}: the tar end frame is damaged: ${why}`, {
        subject: this.path,
        hint: 'copy the bundle again and compare it with its .sha256 sidecar',
      });
    if (frame.compressedSize > MAX_END_FRAME_BYTES) throw bad(`${frame.compressedSize} bytes, far more than 1024 zero bytes take`);
    const src = await readExactly(this.#fh, frame.compressedSize, this.#endFrameAt, this.path);
    if (src.length < 4 || src.readUInt32LE(0) !== ZSTD_FRAME_MAGIC) throw bad('not a zstd frame');
    // One step one byte larger than the marker, and no more than that: more output is not the marker.
    const decoder = new ZstdDecoder({ frames: 'one', step: TAR_END_SIZE + 1, maxOutput: TAR_END_SIZE + 1 });
    const pieces: Buffer[] = [];
    try {
      for (const piece of decoder.decode(src)) pieces.push(piece);
      decoder.end();
    } catch (err) {
      if (!(err instanceof ZstdDecodeError)) throw err;
      throw bad(err.reason === 'corrupt' ? err.message : 'not exactly one complete frame');
    }
    const out = Buffer.concat(pieces);
    if (out.length !== TAR_END_SIZE || !isZeros(out)) throw bad(`it does not hold exactly ${TAR_END_SIZE} zero bytes`);
  }

  /** Close the file; streams still open will fail. */
  async close(): Promise<void> {
    await this.#fh.close().catch(() => undefined);
  }
}
