/**
 * The files a bundle is read from, with their sha256: what a receipt records and what import
 * compares with it. The one place that says which files those are, so that verify (writing the
 * receipt) and import (checking it) always hash the same list.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { AirlockError, fromFsError, isAirlockError } from '../errors.js';
import { hashFileInWorker } from '../fs/file-hash.js';
import type { ReceiptFile } from './receipt.js';

/**
 * The files of the bundle at `path`, in reading order: today the archive itself. Asynchronous
 * because the parts of a split bundle are found on disk (and checked against their sidecar).
 */
export async function bundleFiles(path: string): Promise<string[]> {
  return [path];
}

/**
 * Size and sha256 of each file, one after another on a worker thread (the main thread is busy
 * verifying or importing meanwhile). Aborting `signal` stops the worker between two reads.
 *
 * @throws IO or INPUT_INVALID naming a file that cannot be read, INTERRUPTED
 */
export async function hashFiles(paths: readonly string[], signal?: AbortSignal): Promise<ReceiptFile[]> {
  const files: ReceiptFile[] = [];
  for (const path of paths) {
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (err) {
      throw fromFsError(err, path, 'reading');
    }
    let sha256: string;
    try {
      sha256 = await hashFileInWorker(path, signal);
    } catch (err) {
      if (isAirlockError(err)) throw err;
      throw new AirlockError('IO', `cannot read ${path} to hash it: ${(err as Error).message}`, { subject: path, cause: err });
    }
    files.push({ name: basename(path), size, sha256 });
  }
  return files;
}
