/**
 * Reading the small files an operator points airlock at (keys, sidecars, image lists, policies,
 * inventories, credentials): only regular files, only up to a cap. A FIFO would block the read
 * forever (and a blocked read in the thread pool cannot be cancelled), `/dev/zero` never ends, and a
 * directory or a 10 GB file is a wrong path, not input. Each is refused naming the path.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { AirlockError, fromFsError } from '../errors.js';

/** Bytes per read: the files are small, most fit in one. */
const READ_CHUNK = 64 << 10;

export interface SmallFileOptions {
  /** Largest size accepted, in bytes. */
  maxBytes: number;
  /** What the file is, for messages: "public key", "image list". */
  what: string;
  /** The next step for a file of the wrong kind or size. */
  hint?: string;
}

/**
 * Open `path` for reading only if it is a regular file (after following links). O_NONBLOCK makes
 * the open of a FIFO return at once instead of waiting for a writer; it changes nothing for
 * regular files.
 */
export async function openRegularFile(path: string, what: string, hint?: string): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw fromFsError(err, path, 'opening');
  }
  try {
    const info = await fh.stat();
    if (!info.isFile()) {
      const why = info.isDirectory() ? `${path} is a directory, expected a file` : `${path}: ${kindOf(info)}, not a regular file`;
      throw new AirlockError('INPUT_INVALID', `${why} (${/^[aeiou]/i.test(what) ? 'an' : 'a'} ${what})`, {
        subject: path,
        hint: hint ?? `pass the ${what} file itself`,
      });
    }
    return fh;
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw fromFsError(err, path, 'reading');
  }
}

/**
 * The whole content of a small regular file. Reads at most `maxBytes + 1` bytes, whatever the file
 * claims its size is (files under /proc say 0, a file can grow while being read).
 *
 * @throws INPUT_INVALID for a missing file, one that is not a regular file, or one over the cap;
 *   IO for other file-system failures
 */
export async function readSmallFile(path: string, opts: SmallFileOptions): Promise<Buffer> {
  const fh = await openRegularFile(path, opts.what, opts.hint);
  try {
    const info = await fh.stat();
    if (info.size > opts.maxBytes) throw tooLarge(path, info.size, opts);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, opts.maxBytes + 1 - total));
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, total);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > opts.maxBytes) throw tooLarge(path, total, opts);
    }
    return Buffer.concat(chunks, total);
  } catch (err) {
    throw fromFsError(err, path, 'reading');
  } finally {
    await fh.close().catch(() => undefined);
  }
}

function tooLarge(path: string, size: number, opts: SmallFileOptions): AirlockError {
  const article = /^[aeiou]/i.test(opts.what) ? 'an' : 'a';
  return new AirlockError('INPUT_INVALID', `${path}: ${size} bytes, more than ${article} ${opts.what} may have (${opts.maxBytes})`, {
    subject: path,
    hint: opts.hint ?? `check the path: it should be ${article} ${opts.what}`,
  });
}

function kindOf(info: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO (named pipe)';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isSocket()) return 'a socket';
  return 'a special file';
}

/**
 * {@link readSmallFile}, or undefined when nothing is at `path`: for files that are looked for in
 * several places and may be missing from most (auth files, per-host certificates).
 */
export async function readOptionalSmallFile(path: string, opts: SmallFileOptions): Promise<Buffer | undefined> {
  try {
    return await readSmallFile(path, opts);
  } catch (err) {
    const code = ((err as { cause?: unknown }).cause as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}
