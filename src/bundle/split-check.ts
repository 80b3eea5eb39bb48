/**
 * Which part of a split set is damaged: each part's sha256 against the set's sidecar. The signed
 * digests say *that* content is wrong; only the per-part sums can say which file to copy again
 * (split-set.ts explains why they come from the sidecar). Also what a receipt records of a
 * bundle's files: {@link archiveFiles}.
 */
import { basename } from 'node:path';
import { runWorker } from '../fs/file-hash.js';
import { AirlockError, isAirlockError } from '../errors.js';
import { partError, resolveSplitSet, type SplitSet } from './split-set.js';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync, fstatSync, constants } = require('node:fs');
const whole = createHash('sha256');
const buf = Buffer.allocUnsafe(4 << 20);
const parts = [];
try {
  for (const path of workerData.paths) {
    const hash = createHash('sha256');
    // O_NONBLOCK: a FIFO opens at once instead of blocking this thread in the kernel, where
    // terminate() cannot reach it (the process would never exit); then only a regular file is read
    // (a device may never end). The readers check the same (fs/small-file.ts openRegularFile).
    const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    let size = 0;
    try {
      if (!fstatSync(fd).isFile()) throw new Error(path + ' is not a regular file');
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        hash.update(buf.subarray(0, n));
        whole.update(buf.subarray(0, n));
        size += n;
      }
    } finally {
      closeSync(fd);
    }
    parts.push({ path, size, sha256: hash.digest('hex') });
  }
  parentPort.postMessage({ sha256: whole.digest('hex'), parts });
} catch (err) {
  parentPort.postMessage({ error: String(err && err.message || err) });
}
`;

/** One file of a bundle: its name (as in the sidecar), path, size and sha256 (hex). */
export interface ArchiveFile {
  name: string;
  path: string;
  size: number;
  sha256: string;
}

/** The files hashed, in order, and the sha256 of them joined (the archive's). */
export interface HashedFiles {
  sha256: string;
  parts: ArchiveFile[];
}

/**
 * Hash `paths` one after another on a worker thread: each file's sha256 and that of all of them
 * joined. Terminated (and rejected) when `signal` aborts.
 */
export async function hashFilesInWorker(paths: readonly string[], signal?: AbortSignal): Promise<HashedFiles> {
  type Message = { sha256?: string; parts?: Array<{ path: string; size: number; sha256: string }>; error?: string };
  const m = await runWorker<Message>(WORKER_SOURCE, { paths }, signal);
  if (m.sha256 === undefined) throw new AirlockError('IO', `could not read the bundle's files to hash them: ${m.error ?? 'unknown error'}`);
  return { sha256: m.sha256, parts: m.parts!.map((p) => ({ ...p, name: basename(p.path) })) };
}

/**
 * Every file of the bundle at `path` (one file, or each part of a split set: see
 * `resolveSplitSet` for the forms `path` may take), with its sha256, in order. One read of the
 * whole bundle, on a worker thread.
 *
 * @example
 * const files = await archiveFiles('mirror.tar.zst.part-001');
 * // [{ name: 'mirror.tar.zst.part-001', path, size, sha256 }, …]
 */
export async function archiveFiles(path: string, opts: { parts?: readonly string[]; signal?: AbortSignal } = {}): Promise<ArchiveFile[]> {
  const set = await resolveSplitSet(path, opts.parts);
  return (await hashFilesInWorker(set === undefined ? [path] : set.parts.map((p) => p.path), opts.signal)).parts;
}

/**
 * The parts whose sha256 differs from the sidecar's line for them, as errors naming each ("part
 * 3 of 7 (NAME.part-003) is damaged: copy it again"); empty when every part matches or the set
 * has no sidecar with part lines.
 */
export function damagedParts(set: SplitSet, hashed: HashedFiles): AirlockError[] {
  const listed = set.expected?.parts ?? [];
  if (listed.length === 0) return [];
  const out: AirlockError[] = [];
  hashed.parts.forEach((p, i) => {
    const want = listed[i];
    if (want !== undefined && want.sha256 !== p.sha256) {
      out.push(
        partError(i + 1, listed.length, p.name, 'is damaged: copy it again', { hint: `its sha256 ${p.sha256} differs from ${want.sha256} in ${set.sidecar}` }),
      );
    }
  });
  return out;
}

/**
 * After `err` while reading a split set: if it is damage (INTEGRITY) and the sidecar shows which
 * part is wrong, an error naming that part (the original as its cause); else `err` unchanged.
 */
export async function namePartDamage(set: SplitSet | undefined, err: unknown, signal?: AbortSignal): Promise<unknown> {
  if (set === undefined || !isAirlockError(err, 'INTEGRITY') || (set.expected?.parts.length ?? 0) === 0 || err.details?.part !== undefined) return err;
  let damaged: AirlockError[];
  try {
    damaged = damagedParts(
      set,
      await hashFilesInWorker(
        set.parts.map((p) => p.path),
        signal,
      ),
    );
  } catch {
    return err;
  }
  const first = damaged[0];
  if (first === undefined) return err;
  const also =
    damaged.length > 1
      ? ` (and ${damaged.length - 1} more: ${damaged
          .slice(1)
          .map((d) => d.subject)
          .join(', ')})`
      : '';
  return new AirlockError('INTEGRITY', `${first.message}${also}`, {
    ...(first.subject === undefined ? {} : { subject: first.subject }),
    ...(first.details === undefined ? {} : { details: first.details }),
    hint: `${first.hint ?? ''}; what was wrong: ${err.message}`,
    cause: err,
  });
}
