/**
 * A split set read as one file: positional reads at offsets of the joined archive go to the part
 * that holds them, so no reader needs to know about parts. A read stops at the end of a part (the
 * callers loop until they have what they asked for, as they do for short reads of one file).
 *
 * Parts are opened when first read and stay open until {@link PartedFile.close}.
 */
import type { FileHandle } from 'node:fs/promises';
import { fromFsError } from '../errors.js';
import { openRegularFile } from '../fs/small-file.js';
import type { SplitSet } from './split-set.js';

/** What the readers need of an open bundle file: a `FileHandle`, or a {@link PartedFile}. */
export interface RandomAccessFile {
  /** Read up to `length` bytes at `position` (null: where the last such read ended); 0 only at the end. */
  read(buffer: Buffer, offset: number, length: number, position: number | null): Promise<{ bytesRead: number }>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

export class PartedFile implements RandomAccessFile {
  readonly set: SplitSet;
  /** Offset of each part's first byte in the joined archive, and the total at the end. */
  readonly #starts: number[];
  readonly #open = new Map<number, Promise<FileHandle>>();
  /** Where a read with a null position continues. */
  #pos = 0;
  #closed = false;

  constructor(set: SplitSet) {
    this.set = set;
    this.#starts = [0];
    for (const p of set.parts) this.#starts.push(this.#starts[this.#starts.length - 1]! + p.size);
  }

  /** The part (0-based in `set.parts`) that holds byte `position` of the joined archive. */
  partAt(position: number): number {
    let lo = 0;
    let hi = this.set.parts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#starts[mid]! <= position) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  async read(buffer: Buffer, offset: number, length: number, position: number | null): Promise<{ bytesRead: number }> {
    const at = position ?? this.#pos;
    const total = this.#starts[this.#starts.length - 1]!;
    if (length === 0 || at >= total) return { bytesRead: 0 };
    const i = this.partAt(at);
    const part = this.set.parts[i]!;
    const within = at - this.#starts[i]!;
    const n = Math.min(length, part.size - within);
    const fh = await this.#handle(i);
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(buffer, offset, n, within));
    } catch (err) {
      throw fromFsError(err, part.path, 'reading');
    }
    if (position === null) this.#pos = at + bytesRead;
    return { bytesRead };
  }

  async stat(): Promise<{ size: number }> {
    return { size: this.#starts[this.#starts.length - 1]! };
  }

  async close(): Promise<void> {
    this.#closed = true;
    const open = [...this.#open.values()];
    this.#open.clear();
    await Promise.all(open.map(async (h) => (await h.catch(() => undefined))?.close().catch(() => undefined)));
  }

  #handle(i: number): Promise<FileHandle> {
    let h = this.#open.get(i);
    if (h === undefined) {
      if (this.#closed) return Promise.reject(new Error('read after close'));
      h = openRegularFile(this.set.parts[i]!.path, 'bundle part');
      h.catch(() => undefined);
      this.#open.set(i, h);
    }
    return h;
  }
}
