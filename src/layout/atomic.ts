/**
 * Atomic file writes: write to a unique temp file beside the target, fsync, rename into place,
 * delete the temp file in `finally`. "Already exists" is success for content-addressed files.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
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
 * Stream `body` into `target` atomically. `body` should be a verifying stream: if it errors, the
 * temp file is removed and `target` is untouched.
 */
export async function streamToFileAtomic(target: string, body: Readable): Promise<void> {
  const tmp = tempPathFor(target);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await pipeline(body, fh.createWriteStream({ autoClose: false, highWaterMark: 1 << 20 }));
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
