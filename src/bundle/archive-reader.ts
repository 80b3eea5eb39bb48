/**
 * Random access to a bundle file: the seek table and airlock index are read from its tail and
 * checked against each other and the file size, then any entry can be streamed on its own by
 * reading only its frames. Several entries may be read at once (positional reads share the file).
 */
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { AirlockError } from '../errors.js';
import { decodeIndex, locateEntries, MAX_INDEX_BYTES, type IndexEntry, type LocatedEntry } from './airlock-index.js';
import { EntryReadable } from './entry-reader.js';
import { openForReading, readExactly } from './file-read.js';
import { AIRLOCK_INDEX_MAGIC, notABundle } from './format.js';
import { decodeSeekTable, parseSeekFooter, SEEK_FOOTER_SIZE, type SeekFrame } from './seek-table.js';

export type { IndexEntry } from './airlock-index.js';

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
  readonly #fh: FileHandle;
  readonly #frames: readonly SeekFrame[];
  readonly #entries: readonly LocatedEntry[];
  readonly #byPath: ReadonlyMap<string, LocatedEntry>;

  private constructor(path: string, size: number, fh: FileHandle, frames: SeekFrame[], entries: LocatedEntry[]) {
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
  static async open(path: string): Promise<ArchiveReader> {
    const fh = await openForReading(path);
    try {
      const { size } = await fh.stat();
      if (size < SEEK_FOOTER_SIZE) throw notABundle(path, 'file too small');
      const footer = await readExactly(fh, SEEK_FOOTER_SIZE, size - SEEK_FOOTER_SIZE, path);
      const { tableSize } = parseSeekFooter(footer, size, path);
      const frames = decodeSeekTable(await readExactly(fh, tableSize, size - tableSize, path), size, path);
      const indexFrame = frames[frames.length - 1]!;
      if (indexFrame.compressedSize < 8 || indexFrame.compressedSize > MAX_INDEX_BYTES + 8) {
        throw notABundle(path, 'implausible index size');
      }
      const indexBytes = await readExactly(fh, indexFrame.compressedSize, size - tableSize - indexFrame.compressedSize, path);
      if (indexBytes.readUInt32LE(0) !== AIRLOCK_INDEX_MAGIC || indexBytes.readUInt32LE(4) !== indexBytes.length - 8) {
        throw notABundle(path, 'no airlock index before the seek table');
      }
      const entries = locateEntries(decodeIndex(indexBytes.subarray(8), path), frames, path);
      return new ArchiveReader(path, size, fh, frames, entries);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
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

  /** Close the file; streams still open will fail. */
  async close(): Promise<void> {
    await this.#fh.close().catch(() => undefined);
  }
}
