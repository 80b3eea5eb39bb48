/**
 * Cuts one body stream into consecutive request bodies of exact lengths (upload chunks) without
 * buffering more than the chunk in flight from the source.
 *
 * The last piece checks that the source ends exactly there, before handing out its final bytes: a
 * source longer than its descriptor fails the final request before it completes, so the registry
 * never commits the blob.
 */
import { Readable } from 'node:stream';

/** Thrown into a request body when the source has more bytes than announced. */
export class SourceTooLongError extends Error {
  readonly code = 'ESOURCETOOLONG';
  constructor(readonly expected: number) {
    super(`body is longer than ${expected} bytes`);
    this.name = 'SourceTooLongError';
  }
}

/** Hands out consecutive pieces of one source stream; see the module comment. */
export class ByteSplitter {
  readonly #source: AsyncIterator<unknown>;
  #pending: Buffer | undefined;
  #taken = 0;
  #ended = false;
  /** The source's own error, if it failed: callers report it instead of the request's. */
  sourceError: unknown;

  constructor(source: Readable) {
    this.#source = source[Symbol.asyncIterator]();
  }

  /** Bytes handed out so far. */
  get taken(): number {
    return this.#taken;
  }

  /** True once the source has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  async #next(): Promise<Buffer | undefined> {
    if (this.#pending !== undefined) {
      const p = this.#pending;
      this.#pending = undefined;
      return p;
    }
    if (this.#ended) return undefined;
    let r: IteratorResult<unknown>;
    try {
      r = await this.#source.next();
    } catch (err) {
      this.sourceError = err;
      throw err;
    }
    if (r.done === true) {
      this.#ended = true;
      return undefined;
    }
    const v = r.value;
    return Buffer.isBuffer(v) ? v : Buffer.from(v as Uint8Array);
  }

  /** Fail if the source has bytes left; checked before the final bytes go out, so a commit never happens. */
  async #expectEnd(): Promise<void> {
    const extra = await this.#next();
    if (extra !== undefined && extra.length > 0) throw new SourceTooLongError(this.#taken);
  }

  async *#piece(length: number, last: boolean): AsyncGenerator<Buffer> {
    if (length === 0 && last) await this.#expectEnd();
    let left = length;
    while (left > 0) {
      let buf = await this.#next();
      if (buf === undefined) return; // short: the request's Content-Length check fails it
      if (buf.length > left) {
        this.#pending = buf.subarray(left);
        buf = buf.subarray(0, left);
      }
      left -= buf.length;
      this.#taken += buf.length;
      if (left === 0 && last) await this.#expectEnd();
      yield buf;
    }
  }

  /**
   * The next `length` bytes as a stream. With `last`, the stream fails if the source goes on.
   */
  take(length: number, last: boolean): Readable {
    return Readable.from(this.#piece(length, last), { objectMode: false });
  }

  /** Stop reading the source (destroys it). */
  async close(): Promise<void> {
    try {
      await this.#source.return?.();
    } catch {
      // Closing a failed source can fail again; nothing more to do.
    }
  }
}
