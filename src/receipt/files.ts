/**
 * The files a bundle is read from, with their sha256: what a receipt records and what import
 * compares with it. The one place that says which files those are, so that verify (writing the
 * receipt) and import (checking it) always hash the same list: the archive, or every part of a
 * split set (bundle/split-set.ts), in order.
 */
import { basename } from 'node:path';
import { AirlockError, isAirlockError } from '../errors.js';
import { resolveSplitSet } from '../bundle/split-set.js';
import { hashFilesInWorker, type HashedFiles } from '../bundle/split-check.js';
import type { ReceiptFile } from './receipt.js';

/** The files of the bundle at `path` (or the split set `parts`), in reading order. */
export async function bundleFiles(path: string, parts?: readonly string[]): Promise<string[]> {
  const set = await resolveSplitSet(path, parts);
  return set === undefined ? [path] : set.parts.map((p) => p.path);
}

/**
 * Size and sha256 of each file, and of them joined, one after another on a worker thread (the main
 * thread is busy verifying or importing meanwhile). Aborting `signal` stops the worker.
 *
 * @throws IO naming a file that cannot be read, INTERRUPTED
 */
export async function hashBundleFiles(paths: readonly string[], signal?: AbortSignal): Promise<HashedFiles> {
  try {
    return await hashFilesInWorker(paths, signal);
  } catch (err) {
    if (isAirlockError(err)) throw err;
    throw new AirlockError('IO', `cannot read ${paths.join(', ')} to hash it: ${(err as Error).message}`, { subject: paths[0], cause: err });
  }
}

/** The files as a receipt lists them. */
export function receiptFiles(hashed: HashedFiles): ReceiptFile[] {
  return hashed.parts.map((p) => ({ name: basename(p.path), size: p.size, sha256: p.sha256 }));
}

/** {@link hashBundleFiles}, as a receipt lists them. */
export async function hashFiles(paths: readonly string[], signal?: AbortSignal): Promise<ReceiptFile[]> {
  return receiptFiles(await hashBundleFiles(paths, signal));
}
