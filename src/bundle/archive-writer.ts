/**
 * Writes a bundle file: tar entries, each starting a new zstd frame (compressed, or Raw blocks for
 * already-compressed blobs), the tar end frame, the airlock index and the seek table. The
 * whole-file sha256 for the `.sha256` sidecar is computed by a worker trailing the writes.
 *
 * Entries are added one at a time, in archive order; the writer does not reorder or check the
 * order of bundle.json, bundle.json.sig, oci-layout, index.json, blobs (the caller owns that).
 */
import { AirlockError } from '../errors.js';
import { encodeIndex, type EntryEncoding, type IndexEntry } from './airlock-index.js';
import { BatchOutput, type WrittenFile } from './batch-output.js';
import { AIRLOCK_INDEX_MAGIC, MAX_FRAME_CONTENT, TAR_BLOCK, TAR_END_SIZE } from './format.js';
import { DEFAULT_LEVEL, DEFAULT_WORKERS, RawFrameEncoder, ZstdFrameEncoder, type FrameEncoder } from './frame-encoders.js';
import { encodeSeekTable, type SeekFrame } from './seek-table.js';
import { encodeTarHeader, tarEntrySize, tarPadding } from './tar-entry.js';
import { skippableFrame } from './zstd-frames.js';

/** Options of {@link ArchiveWriter.create}. */
export interface ArchiveWriterOptions {
  /** mtime of every tar entry: the bundle's creation time (whole seconds are kept). */
  mtime: Date;
  /** zstd level for compressed entries; default {@link DEFAULT_LEVEL}. */
  level?: number | undefined;
  /** libzstd worker threads; default {@link DEFAULT_WORKERS}. */
  workers?: number | undefined;
  /** Largest decompressed frame; default (and maximum) {@link MAX_FRAME_CONTENT}. Tests use small values. */
  maxFrameContent?: number | undefined;
  /**
   * Write a split set of parts of this many bytes (`PATH.part-001`, …: parted-output.ts) instead
   * of one file. The bytes are the same; only where they land differs.
   */
  split?: number | undefined;
}

/** The complete entries already in a file that {@link ArchiveWriter.append} continues. */
export interface ArchivePrefix {
  /** File bytes they take (with {@link partial}'s): the file is cut there. */
  bytes: number;
  entries: readonly IndexEntry[];
  /** Their frames, in order. */
  frames: readonly SeekFrame[];
  /** The Raw-block entry after them, kept in part: continue it with {@link ArchiveWriter.continueStream}. */
  partial?: PartialEntry;
}

/**
 * The start of a Raw-block entry: whole frames, then possibly whole blocks of an open frame. The
 * writer continues it exactly as if it had never stopped (frame and block headers depend only on
 * the sizes), so the file ends up byte-identical to one written in one go.
 */
export interface PartialEntry {
  /** Its index record (`frames` is counted again as it is continued). */
  entry: IndexEntry;
  /** Its complete frames. */
  frames: readonly SeekFrame[];
  /** The frame it stops in: file offset of its header, content size, content bytes written. */
  open?: { start: number; contentSize: number; contentDone: number };
  /** Content bytes (tar header and data) kept. */
  content: number;
  /** File bytes kept. */
  bytes: number;
}

/** Options of one entry. */
export interface AddOptions {
  /** Compress with zstd (true) or store in Raw blocks (false: gzip/zstd layers). */
  compress: boolean;
  signal?: AbortSignal | undefined;
}

const ZEROS = Buffer.alloc(TAR_BLOCK);

/** Writes one bundle file, entry by entry; see the module comment. */
export class ArchiveWriter {
  readonly #out: BatchOutput;
  readonly #mtime: Date;
  readonly #maxFrame: number;
  readonly #zstd: ZstdFrameEncoder;
  readonly #raw: RawFrameEncoder;
  readonly #entries: IndexEntry[] = [];
  readonly #names = new Set<string>();
  readonly #frames: SeekFrame[] = [];
  #tarOffset = 0;
  /** Set by {@link append} with a partial entry, until {@link continueStream} finishes it. */
  #partial: PartialEntry | undefined;
  #busy = false;
  #failed: unknown;
  #closed = false;

  private constructor(out: BatchOutput, opts: ArchiveWriterOptions) {
    this.#out = out;
    this.#mtime = opts.mtime;
    this.#maxFrame = opts.maxFrameContent ?? MAX_FRAME_CONTENT;
    if (!(this.#maxFrame >= TAR_BLOCK && this.#maxFrame <= MAX_FRAME_CONTENT)) {
      throw new AirlockError('INTERNAL', `maxFrameContent ${this.#maxFrame} out of range`);
    }
    this.#zstd = new ZstdFrameEncoder(out, opts.level ?? DEFAULT_LEVEL, opts.workers ?? DEFAULT_WORKERS);
    this.#raw = new RawFrameEncoder(out);
  }

  /**
   * Create (or truncate) `path` and return a writer for it. The caller writes to a temporary
   * name (`OUT.partial`) and renames it after {@link finish}.
   *
   * @example
   * const w = await ArchiveWriter.create('out.tar.zst.partial', { mtime: new Date() });
   * await w.addBuffer('bundle.json', head, { compress: true });
   * const { sha256, bytes } = await w.finish();
   */
  static async create(path: string, opts: ArchiveWriterOptions): Promise<ArchiveWriter> {
    return ArchiveWriter.#over(await BatchOutput.create(path, opts.split), opts);
  }

  /**
   * Continue `path` after `prefix` (cutting off whatever follows it): the index, seek table and
   * sha256 will cover the prefix's entries as if this writer had written them. `resumeArchive`
   * (archive-resume.ts) finds and checks the prefix.
   */
  static async append(path: string, opts: ArchiveWriterOptions, prefix: ArchivePrefix): Promise<ArchiveWriter> {
    const stored = prefix.frames.reduce((n, f) => n + f.compressedSize, 0) + (prefix.partial?.bytes ?? 0);
    const framed = prefix.entries.reduce((n, e) => n + e.frames, 0);
    const part = prefix.partial;
    const partOk =
      part === undefined ||
      (part.entry.offset === stored - part.bytes &&
        part.entry.encoding === 'raw' &&
        part.content > TAR_BLOCK - 1 &&
        part.content < TAR_BLOCK + part.entry.size);
    if (stored !== prefix.bytes || framed !== prefix.frames.length || !partOk) {
      throw new AirlockError('INTERNAL', `archive prefix of ${prefix.bytes} bytes does not match its frames`);
    }
    const w = await ArchiveWriter.#over(await BatchOutput.append(path, prefix.bytes, opts.split), opts);
    for (const e of prefix.entries) {
      w.#entries.push({ ...e });
      w.#names.add(e.path);
      w.#tarOffset += tarEntrySize(e.size);
    }
    w.#frames.push(...prefix.frames);
    w.#partial = part;
    return w;
  }

  static async #over(out: BatchOutput, opts: ArchiveWriterOptions): Promise<ArchiveWriter> {
    try {
      return new ArchiveWriter(out, opts);
    } catch (err) {
      await out.abandon();
      throw err;
    }
  }

  /** Add an entry held in memory (manifests, configs, bundle.json). */
  async addBuffer(name: string, data: Buffer, opts: AddOptions): Promise<void> {
    await this.#guard(() => this.#addEntry(name, data.length, [data], opts));
  }

  /**
   * Add an entry whose `size` bytes come from `body`. Fails with INTEGRITY if the body yields
   * more or fewer bytes; errors of the body (e.g. verifiedChunks' digest mismatch) propagate.
   * After any failure the writer refuses further calls: {@link abort} it.
   */
  async addStream(name: string, size: number, body: AsyncIterable<Buffer>, opts: AddOptions): Promise<void> {
    await this.#guard(() => this.#addEntry(name, size, body, opts));
  }

  /**
   * Finish the entry kept in part by {@link append}: `body` yields the rest of its data, from
   * data byte `partial.content - 512` on (what the caller fetched with a Range request).
   */
  async continueStream(name: string, size: number, body: AsyncIterable<Buffer>, opts: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    await this.#guard(async () => {
      const part = this.#partial;
      if (part === undefined || part.entry.path !== name || part.entry.size !== size) {
        throw new AirlockError('INTERNAL', `no partly written entry ${name} of ${size} bytes to continue`);
      }
      this.#partial = undefined;
      const entry: IndexEntry = { ...part.entry, frames: 0 };
      this.#frames.push(...part.frames);
      const framed = this.#framed(this.#raw, part.open === undefined ? undefined : { start: part.open.start, size: part.open.contentSize });
      if (part.open !== undefined) this.#raw.resumeFrame(part.open.contentSize - part.open.contentDone);
      const cutter = new FrameCutter(tarEntrySize(size), this.#maxFrame, framed, {
        written: part.content,
        frames: part.frames.length + (part.open === undefined ? 0 : 1),
        left: part.open === undefined ? 0 : part.open.contentSize - part.open.contentDone,
      });
      await this.#writeBody(name, size, size - (part.content - TAR_BLOCK), body, cutter, opts.signal);
      await cutter.finish();
      entry.frames = cutter.frames;
      this.#tarOffset += cutter.total;
      this.#names.add(name);
      this.#entries.push(entry);
    });
  }

  /** Where the entry kept in part starts in the file (undefined when there is none). */
  get partialOffset(): number | undefined {
    return this.#partial?.entry.offset;
  }

  /** Write the tar end, the index and the seek table; fsync and close. */
  async finish(): Promise<WrittenFile> {
    return this.#guard(async () => {
      if (this.#partial !== undefined) throw new AirlockError('INTERNAL', `entry ${this.#partial.entry.path} was left unfinished`);
      const end = this.#framed(this.#zstd);
      await end.begin(TAR_END_SIZE);
      await end.write(Buffer.alloc(TAR_END_SIZE));
      await end.end();
      const index = skippableFrame(AIRLOCK_INDEX_MAGIC, encodeIndex(this.#entries));
      await this.#out.write(index);
      this.#frames.push({ compressedSize: index.length, decompressedSize: 0 });
      await this.#out.write(encodeSeekTable(this.#frames));
      this.#closed = true;
      return this.#out.close();
    });
  }

  /**
   * Close the file as it is, leaving it to the caller to delete or resume. With `flush`, what is
   * still buffered (up to 8 MiB: complete entries, then part of one) is written first, so a resume
   * finds them. Never throws.
   */
  async abort(opts: { flush?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (opts.flush === true && !this.#busy) {
      try {
        await this.#out.keep();
        return;
      } catch {
        // fall through: close what is left
      }
    }
    await this.#out.abandon();
  }

  async #guard<T>(step: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new AirlockError('INTERNAL', 'archive writer already closed');
    if (this.#failed !== undefined) throw new AirlockError('INTERNAL', 'archive writer failed earlier', { cause: this.#failed });
    if (this.#busy) throw new AirlockError('INTERNAL', 'archive writer used concurrently');
    this.#busy = true;
    try {
      return await step();
    } catch (err) {
      this.#failed = err;
      throw err;
    } finally {
      this.#busy = false;
    }
  }

  async #addEntry(name: string, size: number, body: Iterable<Buffer> | AsyncIterable<Buffer>, opts: AddOptions): Promise<void> {
    if (this.#names.has(name)) throw new AirlockError('INTERNAL', `entry ${name} added twice`);
    if (this.#partial !== undefined) throw new AirlockError('INTERNAL', `entry ${this.#partial.entry.path} must be continued first`);
    const header = encodeTarHeader(name, size, this.#mtime);
    const encoding: EntryEncoding = opts.compress ? 'zstd' : 'raw';
    const encoder = opts.compress ? this.#zstd : this.#raw;
    const entry: IndexEntry = {
      path: name,
      size,
      offset: this.#out.position,
      frames: 0,
      dataOffset: this.#tarOffset + TAR_BLOCK,
      encoding,
    };
    const cutter = new FrameCutter(TAR_BLOCK + size + tarPadding(size), this.#maxFrame, this.#framed(encoder));
    await cutter.write(header);
    await this.#writeBody(name, size, size, body, cutter, opts.signal);
    await cutter.finish();
    entry.frames = cutter.frames;
    this.#tarOffset += cutter.total;
    this.#names.add(name);
    this.#entries.push(entry);
  }

  /** The last `expected` bytes of an entry's data, then its padding. */
  async #writeBody(
    name: string,
    size: number,
    expected: number,
    body: Iterable<Buffer> | AsyncIterable<Buffer>,
    cutter: FrameCutter,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    let seen = 0;
    const got = (n: number | string): string => (expected === size ? String(n) : `${size - expected} + ${n}`);
    for await (const chunk of body) {
      signal?.throwIfAborted();
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      seen += buf.length;
      if (seen > expected) throw sizeError(name, size, `more than ${got(expected)}`);
      await cutter.write(buf);
    }
    if (seen < expected) throw sizeError(name, size, got(seen));
    await cutter.write(ZEROS.subarray(0, tarPadding(size)));
  }

  /**
   * `encoder`, with each frame it writes recorded for the seek table; `open` is a frame already
   * begun in the file (a continued entry).
   */
  #framed(encoder: FrameEncoder, open?: { start: number; size: number }): FrameEncoder {
    let start = open?.start ?? 0;
    let size = open?.size ?? 0;
    return {
      begin: async (contentSize) => {
        start = this.#out.position;
        size = contentSize;
        await encoder.begin(contentSize);
      },
      write: (chunk) => encoder.write(chunk),
      end: async () => {
        await encoder.end();
        this.#frames.push({ compressedSize: this.#out.position - start, decompressedSize: size });
      },
    };
  }
}

function sizeError(name: string, size: number, got: string): AirlockError {
  return new AirlockError('INTEGRITY', `${name}: expected ${size} bytes, got ${got}`, {
    subject: name,
    details: { expected: size, got },
  });
}

/**
 * Splits an entry's content (header, data, padding: `total` bytes) into frames of at most
 * `maxFrame` bytes, opening and closing frames of `encoder` as the content flows through.
 */
class FrameCutter {
  readonly total: number;
  frames = 0;
  readonly #maxFrame: number;
  readonly #encoder: FrameEncoder;
  #written = 0;
  /** Bytes left in the open frame; 0 when no frame is open. */
  #left = 0;

  /** `resume`: where a continued entry stands (content written, frames begun, left in the open one). */
  constructor(total: number, maxFrame: number, encoder: FrameEncoder, resume?: { written: number; frames: number; left: number }) {
    this.total = total;
    this.#maxFrame = maxFrame;
    this.#encoder = encoder;
    if (resume !== undefined) {
      this.#written = resume.written;
      this.frames = resume.frames;
      this.#left = resume.left;
    }
  }

  async write(chunk: Buffer): Promise<void> {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#left === 0) {
        this.#left = Math.min(this.#maxFrame, this.total - this.#written);
        if (this.#left === 0) throw new AirlockError('INTERNAL', `entry content exceeds ${this.total} bytes`);
        this.frames += 1;
        await this.#encoder.begin(this.#left);
      }
      const n = Math.min(this.#left, chunk.length - pos);
      await this.#encoder.write(pos === 0 && n === chunk.length ? chunk : chunk.subarray(pos, pos + n));
      this.#left -= n;
      this.#written += n;
      pos += n;
      if (this.#left === 0) await this.#encoder.end();
    }
  }

  async finish(): Promise<void> {
    if (this.#written !== this.total) {
      throw new AirlockError('INTERNAL', `entry content ${this.#written} of ${this.total} bytes`);
    }
  }
}
