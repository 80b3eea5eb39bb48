/**
 * Reading response bodies from a registry, which is untrusted: every read has a cap.
 */
import type { Readable } from 'node:stream';
import { BodyPace, DEFAULT_TIMEOUTS } from './timeouts.js';

/** Registry error bodies are read up to 64 KiB (as go-containerregistry does); the rest is dropped. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** Thrown by {@link readCapped} in `throw` mode when the body is longer than the cap. */
export class BodyTooLargeError extends Error {
  readonly code = 'EBODYTOOLARGE';
  constructor(readonly limit: number) {
    super(`response body is larger than ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * Read a body into memory, at most `limit` bytes. With `overflow: 'truncate'` the first `limit`
 * bytes are returned and the rest discarded; with `'throw'` a {@link BodyTooLargeError} is thrown.
 * The stream is destroyed as soon as the cap is hit, so a hostile server cannot make us read on,
 * and when it trickles below the rate floor (see `BodyPace`, window `windowMs`).
 */
export async function readCapped(body: Readable, limit: number, overflow: 'truncate' | 'throw', windowMs = DEFAULT_TIMEOUTS.bodyMs): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const pace = new BodyPace(windowMs);
  pace.waiting();
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    try {
      pace.got(buf.length);
    } catch (err) {
      abandon(body);
      throw err;
    }
    if (total + buf.length > limit) {
      abandon(body);
      if (overflow === 'throw') throw new BodyTooLargeError(limit);
      chunks.push(buf.subarray(0, limit - total));
      total = limit;
      break;
    }
    chunks.push(buf);
    total += buf.length;
    pace.waiting();
  }
  return Buffer.concat(chunks, total);
}

/**
 * Discard a body we do not need so the connection can be reused; errors are irrelevant here. It
 * gets `windowMs` to arrive (a body that takes longer only costs the connection it came on).
 */
export async function discard(body: Readable | undefined, windowMs = DEFAULT_TIMEOUTS.bodyMs): Promise<void> {
  if (body === undefined) return;
  const dump = (body as Readable & { dump?: (opts?: { limit: number; signal?: AbortSignal }) => Promise<void> }).dump;
  try {
    if (typeof dump === 'function') await dump.call(body, { limit: MAX_ERROR_BODY_BYTES, signal: AbortSignal.timeout(windowMs) });
    else abandon(body);
  } catch {
    // The body is unwanted; a failure to drain it only costs the connection.
  }
}

/**
 * Stop reading a body at once. undici's body emits an abort error when destroyed early; nobody
 * wants it, so it is swallowed here rather than crash the process as an unhandled 'error'.
 */
export function abandon(body: Readable): void {
  body.on('error', () => {});
  body.destroy();
}
