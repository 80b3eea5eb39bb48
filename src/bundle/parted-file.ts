/**
 * A split set read as one file: positional reads at offsets of the joined archive go to the part
 * that holds them, so no reader needs to know about parts. A read stops at the end of a part (the
 * callers loop until they have what they asked for, as they do for short reads of one file).
 *
 * Parts are opened when first read; at most {@link MAX_OPEN_PARTS} stay open (the least recently
 * used idle one is closed to open another), so a set of thousands of small parts needs no more
 * file handles than a few.
 */
import type { FileHandle } from 'node:fs/promises';
import { AirlockError, fromFsError } from '../errors.js';
import { openRegularFile } from '../fs/small-file.js';
import type { SplitSet } from './split-set.js';

/** What the readers need of an open bundle file: a `FileHandle`, or a {@link PartedFile}. */
export interface RandomAccessFile {
  /** Read up to `length` bytes at `position` (null: where the last such read ended); 0 only at the end. */
  read(buffer: Buffer, offset: number, length: number, position: number | null): Promise<{ bytesRead: number }>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

/** Parts kept open at once, at most: 16 (readers work on one or two places of the file at a time). */
export const MAX_OPEN_PARTS = 16;

interface OpenPart {
  handle: Promise<FileHandle>;
  /** Reads in flight on it: it is not closed while there are any. */
  users: number;
  lastUse: number;
}

export class PartedFile implements RandomAccessFile {
  readonly set: SplitSet;
  /** Offset of each part's first byte in the joined archive, and the total at the end. */
  readonly #starts: number[];
  readonly #open = new Map<number, OpenPart>();
  #uses = 0;
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
    const open = this.#use(i);
    let bytesRead: number;
    try {
      ({ bytesRead } = await (await open.handle).read(buffer, offset, n, within));
    } catch (err) {
      throw fromFsError(err, part.path, 'reading');
    } finally {
      open.users -= 1;
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
    await Promise.all(open.map((p) => closeQuietly(p.handle)));
  }

  /** Part `i` open, counted as in use until the caller is done with it. */
  #use(i: number): OpenPart {
    let open = this.#open.get(i);
    if (open === undefined) {
      if (this.#closed) throw new AirlockError('IO', `${this.set.path}: read after the bundle was closed`);
      this.#evict();
      const handle = openRegularFile(this.set.parts[i]!.path, 'bundle part');
      handle.catch(() => undefined);
      open = { handle, users: 0, lastUse: 0 };
      this.#open.set(i, open);
    }
    open.users += 1;
    open.lastUse = ++this.#uses;
    return open;
  }

  /** Close idle parts, least recently used first, until there is room for one more. */
  #evict(): void {
    const idle = [...this.#open.entries()].filter(([, p]) => p.users === 0).sort((a, b) => a[1].lastUse - b[1].lastUse);
    for (const [i, p] of idle) {
      if (this.#open.size < MAX_OPEN_PARTS) return;
      this.#open.delete(i);
      void closeQuietly(p.handle);
    }
  }
}

async function closeQuietly(handle: Promise<FileHandle>): Promise<void> {
  await (await handle.catch(() => undefined))?.close().catch(() => undefined);
}
