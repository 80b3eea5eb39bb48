/**
 * The `onBytes` of {@link OpenBlobOptions} for sources whose streams have no hook of their own: a
 * pass-through stage that reports each chunk's size. Only added when a caller asks for it.
 */
import { Transform, type Readable } from 'node:stream';
import type { OpenBlobOptions } from './types.js';

/** `stream` itself when nobody counts, else `stream` through a counting stage (errors carry over, closing it closes `stream`). */
export function withByteCount(stream: Readable, opts: Pick<OpenBlobOptions, 'onBytes'>): Readable {
  const onBytes = opts.onBytes;
  if (onBytes === undefined) return stream;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      onBytes(chunk.length);
      done(null, chunk);
    },
  });
  stream.on('error', (err) => counter.destroy(err));
  counter.on('close', () => stream.destroy());
  return stream.pipe(counter);
}
