/**
 * A pass-through stream that hashes and counts what flows through it and fails if the content
 * is longer than expected or, at the end, has the wrong size or digest.
 *
 * As in containers/image's digesting reader, the final chunk is held back until the digest has
 * been checked: a consumer that commits on 'finish' never sees the last bytes of bad content.
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

export class VerifyingStream extends Transform {
  readonly #expected: Expected;
  readonly #what: string;
  readonly #hash: Hash;
  readonly #onBytes: ((n: number) => void) | undefined;
  #seen = 0;
  #held: Buffer | undefined;

  /**
   * @param expected digest and size the content must have
   * @param what how to name the content in an error, e.g. `blob sha256:… of quay.io/coreos/etcd`
   * @param onBytes called with the size of every chunk, for progress, without another stream stage
   */
  constructor(expected: Expected, what: string, onBytes?: (n: number) => void) {
    super({ highWaterMark: 1 << 20 });
    this.#expected = expected;
    this.#what = what;
    this.#hash = createHash('sha256');
    this.#onBytes = onBytes;
  }

  get bytesSeen(): number {
    return this.#seen;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#expected.size) {
      cb(integrityError(this.#what, this.#expected, { size: this.#seen }));
      return;
    }
    this.#hash.update(chunk);
    this.#onBytes?.(chunk.length);
    const previous = this.#held;
    this.#held = chunk;
    cb(null, previous);
  }

  override _flush(cb: TransformCallback): void {
    const got = `sha256:${this.#hash.digest('hex')}`;
    if (this.#seen !== this.#expected.size) {
      cb(integrityError(this.#what, this.#expected, { size: this.#seen }));
      return;
    }
    if (got !== this.#expected.digest) {
      cb(integrityError(this.#what, this.#expected, { digest: got, size: this.#seen }));
      return;
    }
    cb(null, this.#held);
  }
}
