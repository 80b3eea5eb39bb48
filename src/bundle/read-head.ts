/**
 * Read the signed head of a bundle — `bundle.json` and `bundle.json.sig`, its first two entries —
 * by decompressing from the start of the file only as far as they reach. Needs neither the seek
 * table nor the rest of the file, so it works on the first megabytes of a bundle too (a partial
 * copy, or the head fetched on its own to decide whether the rest is worth moving).
 */
import { AirlockError, fromFsError, isAirlockError } from '../errors.js';
import { openForReading, READ_CHUNK, type RandomAccessFile } from './file-read.js';
import { locationName, parsePartName, type ArchiveLocation } from './split-set.js';
import { openRegularFile } from '../fs/small-file.js';
import { BUNDLE_JSON, BUNDLE_SIG, TAR_BLOCK } from './format.js';
import { decodeTarHeader, tarPadding } from './tar-entry.js';
import { ZstdDecoder, ZstdDecodeError } from './zstd-decode.js';

/** Default cap on the size of bundle.json: 64 MiB, room for ~200,000 blobs. */
export const MAX_BUNDLE_JSON_BYTES = 64 << 20;

/** Cap on bundle.json.sig: 64 KiB (a real one is ~300 bytes). */
export const MAX_SIGNATURE_BYTES = 64 << 10;

/** What {@link readHead} found. */
export interface BundleHead {
  /** The exact bytes of bundle.json: hash these, do not re-serialise. */
  bundleJson: Buffer;
  /** The exact bytes of bundle.json.sig, absent in an unsigned bundle. */
  signature?: Buffer;
}

/**
 * Decompress the start of `path` until bundle.json and (if present) bundle.json.sig are read.
 *
 * @param maxBytes largest bundle.json accepted
 * @throws INTEGRITY when the file does not start with bundle.json, an entry is too large, or the
 *   file ends before the head is complete
 */
export async function readHead(loc: ArchiveLocation, maxBytes = MAX_BUNDLE_JSON_BYTES): Promise<BundleHead> {
  const path = locationName(loc);
  const fh = await openHead(loc);
  try {
    return await decodeHead(fh, path, maxBytes);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * `loc` opened for its head. The head is in the first part of a split set, so a first part named
 * on its own is enough when the set is not whole (the others not copied yet, or only the first
 * part kept for a later `--since`), as the first megabytes of a single file are.
 */
async function openHead(loc: ArchiveLocation): Promise<RandomAccessFile> {
  try {
    return await openForReading(loc);
  } catch (err) {
    if (typeof loc !== 'string' || parsePartName(loc)?.index !== 1 || !isAirlockError(err, 'INTEGRITY')) throw err;
    return openRegularFile(loc, 'bundle archive');
  }
}

async function decodeHead(fh: RandomAccessFile, path: string, maxBytes: number): Promise<BundleHead> {
  // Decoded one step at a time and stopped as soon as the head is complete: a hostile file
  // cannot make us inflate more than one step past what we need.
  const decoder = new ZstdDecoder();
  const input = Buffer.allocUnsafe(READ_CHUNK);
  const parts: Buffer[] = [];
  let have = 0;
  /** Decompressed bytes needed before parsing again (grows as headers reveal sizes). */
  let need = TAR_BLOCK;
  let position = 0;
  for (;;) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(input, 0, input.length, position));
    } catch (err) {
      throw fromFsError(err, path, 'reading');
    }
    if (bytesRead === 0) {
      throw new AirlockError('INTEGRITY', `${path}: file ends before ${BUNDLE_JSON} and its signature were read`, {
        subject: path,
        hint: 'the bundle is truncated or empty: copy it again',
      });
    }
    position += bytesRead;
    // The pieces are buffers of their own, and the decoder is done with `input` before it is reused.
    try {
      for (const piece of decoder.decode(input.subarray(0, bytesRead))) {
        parts.push(piece);
        have += piece.length;
        while (have >= need) {
          const parsed = parseHead(Buffer.concat(parts, have), path, maxBytes);
          if (typeof parsed !== 'number') return parsed;
          need = parsed;
        }
      }
    } catch (err) {
      if (err instanceof ZstdDecodeError) throw new AirlockError('INTEGRITY', `${path}: not a zstd-compressed airlock bundle`, { subject: path, cause: err });
      throw err;
    }
  }
}

/** The head if `tar` (decompressed from the start) holds all of it, else how many bytes it needs. */
function parseHead(tar: Buffer, path: string, maxBytes: number): BundleHead | number {
  const first = decodeTarHeader(tar.subarray(0, TAR_BLOCK));
  if (first === undefined || first.path !== BUNDLE_JSON || first.type !== 'File' || first.size === undefined) {
    throw new AirlockError('INTEGRITY', `${path}: not an airlock bundle (it does not start with ${BUNDLE_JSON})`, { subject: path });
  }
  if (first.size > maxBytes) {
    throw new AirlockError('INTEGRITY', `${path}: ${BUNDLE_JSON} is ${first.size} bytes, more than the ${maxBytes} accepted`, {
      subject: path,
    });
  }
  const secondAt = TAR_BLOCK + first.size + tarPadding(first.size);
  if (tar.length < secondAt + TAR_BLOCK) return secondAt + TAR_BLOCK;
  const bundleJson = Buffer.from(tar.subarray(TAR_BLOCK, TAR_BLOCK + first.size));
  const second = decodeTarHeader(tar.subarray(secondAt, secondAt + TAR_BLOCK));
  if (second === undefined || second.path !== BUNDLE_SIG) return { bundleJson };
  if (second.type !== 'File' || second.size === undefined || second.size > MAX_SIGNATURE_BYTES) {
    throw new AirlockError('INTEGRITY', `${path}: ${BUNDLE_SIG} is not a regular file of at most ${MAX_SIGNATURE_BYTES} bytes`, {
      subject: path,
    });
  }
  const sigEnd = secondAt + TAR_BLOCK + second.size;
  if (tar.length < sigEnd) return sigEnd;
  return { bundleJson, signature: Buffer.from(tar.subarray(secondAt + TAR_BLOCK, sigEnd)) };
}
