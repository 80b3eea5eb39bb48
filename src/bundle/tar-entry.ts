/**
 * Tar headers as airlock writes them, and the path rules it reads them by.
 *
 * Every entry is a regular file, mode 0644, uid/gid 0, empty uname/gname, mtime = the bundle's
 * creation time, a clean relative path that fits the ustar name/prefix fields (no PAX headers).
 * node-tar's {@link Header} does the encoding; sizes of 8 GiB and more go into the 12-byte size
 * field in base-256 (the GNU extension that GNU tar, bsdtar and node-tar read).
 */
import { Header } from 'tar';
import { AirlockError } from '../errors.js';
import { TAR_BLOCK } from './format.js';

/** Mode of every entry: regular file, rw-r--r--. */
const ENTRY_MODE = 0o644;

/** Largest size the octal ustar field holds (8 GiB - 1); larger sizes use base-256. */
const MAX_OCTAL_SIZE = 0o77777777777;

/** Zero bytes after `size` bytes of data, up to the next 512-byte boundary. */
export function tarPadding(size: number): number {
  return (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;
}

/** Bytes an entry takes in the tar stream: header, data, padding. */
export function tarEntrySize(size: number): number {
  return TAR_BLOCK + size + tarPadding(size);
}

/**
 * Why `path` is not a safe relative path to extract, or undefined when it is. Rejects empty,
 * absolute, `..`/`.` segments, empty segments, backslashes, NUL and other control characters.
 */
export function unsafePathReason(path: string): string | undefined {
  if (path === '') return 'empty path';
  if (path.startsWith('/')) return 'absolute path';
  if (/^[A-Za-z]:/.test(path)) return 'drive-letter path';
  if (path.includes('\\')) return 'backslash in path';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) return 'control character or NUL in path';
  const segments = path.split('/');
  if (segments.includes('..')) return "'..' in path";
  if (segments.some((s) => s === '' || s === '.')) return 'path is not clean (empty or . segment)';
  return undefined;
}

/**
 * Encode the 512-byte header of a regular-file entry.
 *
 * @throws INTERNAL for a name that is unsafe or does not fit ustar without PAX: entry names are
 *   made by airlock, so this is a bug, not bad input.
 */
export function encodeTarHeader(name: string, size: number, mtime: Date): Buffer {
  const reason = unsafePathReason(name);
  if (reason !== undefined) throw new AirlockError('INTERNAL', `refusing tar entry ${JSON.stringify(name)}: ${reason}`);
  if (!Number.isSafeInteger(size) || size < 0) throw new AirlockError('INTERNAL', `bad tar entry size ${size}`);
  const block = Buffer.alloc(TAR_BLOCK);
  const needPax = headerFor(name, size, mtime).encode(block, 0);
  // node-tar also says "needs PAX" when the size is written in base-256; only the name matters.
  if (needPax && (size <= MAX_OCTAL_SIZE || headerFor(name, 0, mtime).encode())) {
    throw new AirlockError('INTERNAL', `tar entry name ${JSON.stringify(name)} does not fit a ustar header`);
  }
  return block;
}

function headerFor(name: string, size: number, mtime: Date): Header {
  return new Header({
    path: name,
    mode: ENTRY_MODE,
    uid: 0,
    gid: 0,
    size,
    mtime: new Date(Math.floor(mtime.getTime() / 1000) * 1000),
    type: 'File',
    uname: '',
    gname: '',
  });
}

/** Decode a 512-byte header; undefined when the checksum is wrong or the block is all zeros. */
export function decodeTarHeader(block: Buffer): Header | undefined {
  const header = new Header(block, 0);
  if (header.nullBlock || !header.cksumValid) return undefined;
  return header;
}
