/**
 * The bundle file as the writer sees it: bytes go into one of two reused 4 MiB buffers, a full
 * buffer is written with one positional write while the other buffer fills, and a worker thread
 * trailing the writes computes the whole file's sha256 for the `.sha256` sidecar. Memory stays at
 * two buffers whatever the producer does.
 *
 * With a part size the file is a split set (`BASE.part-001`, …; parted-output.ts): the same bytes
 * at the same offsets, cut into parts as they are written, each part hashed on its own too.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { fromFsError } from '../errors.js';
import { PartedOutput, type OutputFile } from './parted-output.js';
import { TrailingHasher, type HashedPart } from './trailing-hasher.js';

/** What {@link BatchOutput.close} reports: the whole file's sha256 and size, and each part's for a split set. */
export interface WrittenFile {
  sha256: string;
  bytes: number;
  parts?: HashedPart[];
}

/**
 * Size of each of the two output buffers: 4 MiB. Writes happen per buffer, so per-call overhead is
 * paid once per ~4 MiB, and at most 8 MiB of output is held in memory.
 */
export const OUTPUT_BUFFER_SIZE = 4 << 20;

/**
 * A buffer is written out once less than this is free: 256 KiB, enough for one zstd output
 * call (ZSTD_CStreamOutSize is 128 KiB) and more than any header. Every write except the last
 * is therefore at least 3.75 MiB.
 */
export const MIN_FREE = 256 << 10;

/**
 * Longest stretch of synchronous work between event-loop turns: 10 ms, short enough for
 * progress timers and socket reads to keep up, long enough that yielding costs nothing.
 */
export const YIELD_AFTER_MS = 10;

/**
 * Written bytes after which the writer asks the kernel to start putting them on disk (an
 * fdatasync in the background, one at a time): 64 MiB. Otherwise a bundle sits in the page cache
 * as dirty pages (the kernel's background writeback starts at 10 % of RAM) and the fsync before the
 * rename waits for all of it: ~0.3 s for 1 GB here, now ~10 ms for the tail.
 */
export const SYNC_EVERY = 64 << 20;

/** The output file with its double buffer and trailing sha256. */
export class BatchOutput {
  readonly path: string;
  readonly #fh: OutputFile;
  readonly #hasher: TrailingHasher;
  #current: Buffer = Buffer.allocUnsafe(OUTPUT_BUFFER_SIZE);
  #spare: Buffer = Buffer.allocUnsafe(OUTPUT_BUFFER_SIZE);
  #fill = 0;
  /** File offset of `#current[0]`. */
  #flushed = 0;
  #inFlight: Promise<void> = Promise.resolve();
  #lastYield = performance.now();
  /** File bytes covered by the last background datasync started, and that sync while it runs. */
  #synced = 0;
  #syncing: Promise<void> | undefined;

  private constructor(path: string, fh: OutputFile, start = 0, partSize?: number) {
    this.path = path;
    this.#fh = fh;
    this.#flushed = start;
    this.#hasher = new TrailingHasher(path, partSize);
    this.#hasher.advance(start);
  }

  /** Create (or truncate) `path` for writing; with `partSize`, the split set `path.part-001`, … */
  static async create(path: string, partSize?: number): Promise<BatchOutput> {
    if (partSize !== undefined) return new BatchOutput(path, await PartedOutput.create(path, partSize), 0, partSize);
    try {
      return new BatchOutput(path, await open(path, 'w', 0o644));
    } catch (err) {
      throw fromFsError(err, path, 'creating');
    }
  }

  /**
   * Continue an existing file: cut it to `start` bytes and append from there. {@link close} still
   * reports the whole file's sha256 (the hasher reads the kept part back).
   */
  static async append(path: string, start: number, partSize?: number): Promise<BatchOutput> {
    if (partSize !== undefined) return new BatchOutput(path, await PartedOutput.append(path, partSize, start), start, partSize);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r+');
    } catch (err) {
      throw fromFsError(err, path, 'opening');
    }
    try {
      await fh.truncate(start);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw fromFsError(err, path, 'truncating');
    }
    return new BatchOutput(path, fh, start);
  }

  /** Bytes handed to the output so far: the file offset of the next byte. */
  get position(): number {
    return this.#flushed + this.#fill;
  }

  /** Free space of the current buffer; write into it, then {@link commit}. */
  free(): Buffer {
    return this.#current.subarray(this.#fill);
  }

  /** Declare `n` bytes of {@link free} as written. */
  commit(n: number): void {
    this.#fill += n;
  }

  /**
   * Make sure at least {@link MIN_FREE} bytes are free, writing the buffer out if needed. Also
   * the writer's yield point: data that is already buffered (a fast source) flows through
   * promise continuations without ever giving timers and sockets a turn, so after
   * {@link YIELD_AFTER_MS} of work this waits one event-loop turn.
   */
  async reserve(): Promise<void> {
    if (this.#current.length - this.#fill < MIN_FREE) await this.flush();
    if (performance.now() - this.#lastYield > YIELD_AFTER_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      this.#lastYield = performance.now();
    }
  }

  /** Copy `data` in, writing buffers out as they fill. */
  async write(data: Buffer): Promise<void> {
    let pos = 0;
    while (pos < data.length) {
      if (this.#fill === this.#current.length) await this.flush();
      const n = data.copy(this.#current, this.#fill, pos);
      this.#fill += n;
      pos += n;
    }
  }

  /** Hash and start writing the current buffer; swap to the spare once its write has finished. */
  async flush(): Promise<void> {
    if (this.#fill === 0) return;
    const chunk = this.#current.subarray(0, this.#fill);
    const previous = this.#inFlight;
    const end = this.#flushed + this.#fill;
    // Writes may overlap; the hasher is told about a byte only once everything before it is written.
    const write = this.#writeAll(chunk, this.#flushed).then(async () => {
      await previous;
      this.#hasher.advance(end);
      this.#syncBehind(end);
    });
    // Keep the rejection observable by whoever awaits next, without an unhandled rejection now.
    write.catch(() => undefined);
    this.#inFlight = write;
    this.#flushed += this.#fill;
    [this.#current, this.#spare] = [this.#spare, this.#current];
    this.#fill = 0;
    await previous; // the new current buffer was the spare being written
  }

  /** Write everything, fsync and close. Returns the sha256 (hex) of all bytes written. */
  async close(): Promise<WrittenFile> {
    try {
      await this.flush();
      await this.#inFlight;
      await this.#syncing;
      await this.#fh.sync();
    } catch (err) {
      await this.#hasher.abort();
      await this.#fh.close().catch(() => undefined);
      throw fromFsError(err, this.path, 'writing');
    }
    try {
      await this.#fh.close();
    } catch (err) {
      await this.#hasher.abort();
      throw fromFsError(err, this.path, 'writing');
    }
    const { sha256, parts } = await this.#hasher.finish(this.#flushed);
    return { sha256, bytes: this.#flushed, ...(parts === undefined ? {} : { parts }) };
  }

  /**
   * Write what is buffered and close, without the fsync and the sha256 of {@link close}: for a file
   * kept to be continued later, which is read back and checked before any of it is reused. Hashing a
   * large file here would hold up Ctrl-C for seconds.
   */
  async keep(): Promise<void> {
    try {
      await this.flush();
      await this.#inFlight;
    } finally {
      await this.#hasher.abort();
      await this.#fh.close().catch(() => undefined);
    }
  }

  /** Close without flushing what is buffered; never throws. */
  async abandon(): Promise<void> {
    await this.#inFlight.catch(() => undefined);
    await this.#syncing?.catch(() => undefined);
    await this.#hasher.abort();
    await this.#fh.close().catch(() => undefined);
  }

  /** Start a background datasync once {@link SYNC_EVERY} bytes were written since the last one. */
  #syncBehind(written: number): void {
    if (this.#syncing !== undefined || written - this.#synced < SYNC_EVERY) return;
    this.#synced = written;
    const sync = this.#fh.datasync().then(
      () => {
        this.#syncing = undefined;
      },
      (err: unknown) => {
        // Kept pending as a rejection: close() awaits it and reports the error.
        throw fromFsError(err, this.path, 'writing');
      },
    );
    sync.catch(() => undefined);
    this.#syncing = sync;
  }

  async #writeAll(chunk: Buffer, position: number): Promise<void> {
    try {
      let done = 0;
      while (done < chunk.length) {
        const { bytesWritten } = await this.#fh.write(chunk, done, chunk.length - done, position + done);
        done += bytesWritten;
      }
    } catch (err) {
      throw fromFsError(err, this.path, 'writing');
    }
  }
}
