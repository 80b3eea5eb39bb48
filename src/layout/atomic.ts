/**
 * Atomic file writes: write to a unique temp file beside the target, fsync, rename into place,
 * delete the temp file in `finally`. "Already exists" is success for content-addressed files.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fromFsError } from '../errors.js';

/** A temp path in the same directory as `target`, so the final rename stays on one file system. */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
}

export async function writeFileAtomic(target: string, data: Buffer, mode = 0o644): Promise<void> {
  const tmp = tempPathFor(target);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
  } catch (err) {
    throw fromFsError(err, target, 'writing');
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Stream `body` (a source and optional transforms, such as a verifying stream) into `target`
 * atomically: if any stage errors, or `signal` aborts, the temp file is removed and `target` is
 * untouched.
 */
export async function streamToFileAtomic(target: string, signal: AbortSignal | undefined, ...body: [Readable, ...Transform[]]): Promise<void> {
  const tmp = tempPathFor(target);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    // The stream owns the handle: it fsyncs (flush) and closes it when the pipeline ends.
    await pipeline([...body, fh.createWriteStream({ flush: true, highWaterMark: 1 << 20 })], signal === undefined ? {} : { signal });
    await rename(tmp, target);
  } catch (err) {
    throw fromFsError(err, target, 'writing');
  } finally {
    await rm(tmp, { force: true });
  }
}
