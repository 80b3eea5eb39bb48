/**
 * Content checked against its digest and size while it flows: {@link VerifyingStream} (a
 * pass-through stream) and {@link verifiedChunks} (the same check over an async iterable, without a
 * stream stage: the create path's hot loop). Both fail as soon as the content is longer than
 * expected and, at the end, if it has the wrong size or digest.
 *
 * As in containers/image's digesting reader, the final chunk is held back until the digest has
 * been checked: a consumer that commits on 'finish' (or on the iterable's end) never sees the last
 * bytes of bad content.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { AirlockError } from '../errors.js';
import type { Digest } from './digest.js';

export interface Expected {
  digest: Digest;
  size: number;
}

export function integrityError(what: string, expected: Expected, got: { digest?: string; size: number }): AirlockError {
  const detail =
    got.digest === undefined
      ? `expected ${expected.size} bytes, got ${got.size}${got.size > expected.size ? ' or more' : ''}`
      : `expected ${expected.digest}, got ${got.digest} (${got.size} bytes)`;
  return new AirlockError('INTEGRITY', `${what}: content does not match its digest: ${detail}`, {
    subject: expected.digest,
    details: { expected, got },
  });
}

/**
 * The first `bytes` of the content, already hashed into `hash` (a resumed create read them back
 * from its partial file): the check goes on from there and still covers the whole content.
 */
export interface KnownPrefix {
  bytes: number;
  hash: Hash;
}

/** Hashes and counts content; the one check behind both forms. */
class Check {
  readonly #expected: Expected;
  readonly #what: string;
  readonly #hash: Hash;
  seen: number;

  constructor(expected: Expected, what: string, before?: KnownPrefix) {
    this.#expected = expected;
    this.#what = what;
    this.#hash = before?.hash ?? createHash('sha256');
    this.seen = before?.bytes ?? 0;
  }

  /** Take a chunk in; an error when the content is now longer than expected. */
  update(chunk: Buffer): AirlockError | undefined {
    this.seen += chunk.length;
    if (this.seen > this.#expected.size) return integrityError(this.#what, this.#expected, { size: this.seen });
    this.#hash.update(chunk);
    return undefined;
  }

  /** The content has ended: an error unless size and digest match. */
  finish(): AirlockError | undefined {
    if (this.seen !== this.#expected.size) return integrityError(this.#what, this.#expected, { size: this.seen });
    const got = `sha256:${this.#hash.digest('hex')}`;
    if (got !== this.#expected.digest) return integrityError(this.#what, this.#expected, { digest: got, size: this.seen });
    return undefined;
  }
}

/**
 * Yields the chunks of `source` once they are hashed, the last one only after size and digest
 * matched; throws INTEGRITY otherwise. `onBytes` is called with the size of every chunk. With
 * `before`, `source` is the rest of content whose start was hashed already.
 *
 * @example
 * for await (const chunk of verifiedChunks(body, desc, `blob ${desc.digest}`)) await sink.write(chunk);
 */
export async function* verifiedChunks(
  source: AsyncIterable<Buffer>,
  expected: Expected,
  what: string,
  onBytes?: (n: number) => void,
  before?: KnownPrefix,
): AsyncGenerator<Buffer, void, undefined> {
  const check = new Check(expected, what, before);
  let held: Buffer | undefined;
  for await (const chunk of source) {
    const tooLong = check.update(chunk);
    if (tooLong !== undefined) throw tooLong;
    onBytes?.(chunk.length);
    if (held !== undefined) yield held;
    held = chunk;
  }
  const bad = check.finish();
  if (bad !== undefined) throw bad;
  if (held !== undefined) yield held;
}

export class VerifyingStream extends Transform {
  readonly #check: Check;
  readonly #onBytes: ((n: number) => void) | undefined;
  #held: Buffer | undefined;

  /**
   * @param expected digest and size the content must have
   * @param what how to name the content in an error, e.g. `blob sha256:… of quay.io/coreos/etcd`
   * @param onBytes called with the size of every chunk, for progress, without another stream stage
   */
  constructor(expected: Expected, what: string, onBytes?: (n: number) => void) {
    super({ highWaterMark: 1 << 20 });
    this.#check = new Check(expected, what);
    this.#onBytes = onBytes;
  }

  get bytesSeen(): number {
    return this.#check.seen;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const tooLong = this.#check.update(chunk);
    if (tooLong !== undefined) {
      cb(tooLong);
      return;
    }
    this.#onBytes?.(chunk.length);
    const previous = this.#held;
    this.#held = chunk;
    cb(null, previous);
  }

  override _flush(cb: TransformCallback): void {
    const bad = this.#check.finish();
    if (bad !== undefined) {
      cb(bad);
      return;
    }
    cb(null, this.#held);
  }
}
