/**
 * Reading response bodies from a registry, which is untrusted: every read has a cap.
 */
import type { Readable } from 'node:stream';

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
 * The stream is destroyed as soon as the cap is hit, so a hostile server cannot make us read on.
 */
export async function readCapped(body: Readable, limit: number, overflow: 'truncate' | 'throw'): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    if (total + buf.length > limit) {
      abandon(body);
      if (overflow === 'throw') throw new BodyTooLargeError(limit);
      chunks.push(buf.subarray(0, limit - total));
      total = limit;
      break;
    }
    chunks.push(buf);
    total += buf.length;
  }
  return Buffer.concat(chunks, total);
}

/** Discard a body we do not need so the connection can be reused; errors are irrelevant here. */
export async function discard(body: Readable | undefined): Promise<void> {
  if (body === undefined) return;
  const dump = (body as Readable & { dump?: (opts?: { limit: number }) => Promise<void> }).dump;
  try {
    if (typeof dump === 'function') await dump.call(body, { limit: MAX_ERROR_BODY_BYTES });
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
