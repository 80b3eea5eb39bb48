/**
 * The zstd seekable-format seek table (facebook/zstd `contrib/seekable_format`), the last frame of
 * a bundle: a skippable frame (magic 0x184D2A5E) holding one 8-byte entry per preceding frame
 * (Compressed_Size u32 LE, Decompressed_Size u32 LE; no checksums) and a 9-byte footer
 * (Number_Of_Frames u32 LE, Seek_Table_Descriptor = 0, Seekable_Magic_Number 0x8F92EAB1).
 */
import { notABundle, SEEK_TABLE_MAGIC, SEEKABLE_FOOTER_MAGIC } from './format.js';

/** One frame as the seek table describes it. */
export interface SeekFrame {
  compressedSize: number;
  decompressedSize: number;
}

/** Footer size: Number_Of_Frames (4), Seek_Table_Descriptor (1), Seekable_Magic_Number (4). */
export const SEEK_FOOTER_SIZE = 9;

/** Skippable frame header: magic (4) + Frame_Size (4). */
const SKIPPABLE_HEADER_SIZE = 8;

/** Bytes per entry without checksums. */
const ENTRY_SIZE = 8;

/**
 * Most frames a reader accepts: 4,194,304 (a 32 MiB seek table). A bundle has one frame per
 * entry plus one per GiB of large blobs, so this is far above any real bundle and still a bound
 * on what an untrusted footer can make us allocate.
 */
export const MAX_FRAMES = 1 << 22;

/** Bytes the seek table frame takes for `frames` entries. */
export function seekTableSize(frames: number): number {
  return SKIPPABLE_HEADER_SIZE + frames * ENTRY_SIZE + SEEK_FOOTER_SIZE;
}

/** Encode the complete seek table frame. */
export function encodeSeekTable(frames: readonly SeekFrame[]): Buffer {
  const out = Buffer.alloc(seekTableSize(frames.length));
  out.writeUInt32LE(SEEK_TABLE_MAGIC, 0);
  out.writeUInt32LE(out.length - SKIPPABLE_HEADER_SIZE, 4);
  let off = SKIPPABLE_HEADER_SIZE;
  for (const f of frames) {
    out.writeUInt32LE(f.compressedSize, off);
    out.writeUInt32LE(f.decompressedSize, off + 4);
    off += ENTRY_SIZE;
  }
  out.writeUInt32LE(frames.length, off);
  out[off + 4] = 0; // Seek_Table_Descriptor: no checksums
  out.writeUInt32LE(SEEKABLE_FOOTER_MAGIC, off + 5);
  return out;
}

/**
 * Read the frame count from the last 9 bytes of a file and check it against the file size.
 * Returns the size of the whole seek table frame.
 */
export function parseSeekFooter(footer: Buffer, fileSize: number, path: string): { frames: number; tableSize: number } {
  if (footer.length !== SEEK_FOOTER_SIZE || footer.readUInt32LE(5) !== SEEKABLE_FOOTER_MAGIC) {
    throw notABundle(path, 'no seek table at the end of the file');
  }
  if ((footer[4]! & 0x7c) !== 0 || (footer[4]! & 0x80) !== 0) {
    throw notABundle(path, 'unsupported seek table descriptor');
  }
  const frames = footer.readUInt32LE(0);
  if (frames === 0 || frames > MAX_FRAMES) throw notABundle(path, `implausible frame count ${frames}`);
  const tableSize = seekTableSize(frames);
  if (tableSize > fileSize) throw notABundle(path, 'seek table larger than the file');
  return { frames, tableSize };
}

/**
 * Decode a complete seek table frame (as read from the end of the file) and check that the
 * frames it lists exactly fill the file before it.
 */
export function decodeSeekTable(table: Buffer, fileSize: number, path: string): SeekFrame[] {
  if (table.readUInt32LE(0) !== SEEK_TABLE_MAGIC || table.readUInt32LE(4) !== table.length - SKIPPABLE_HEADER_SIZE) {
    throw notABundle(path, 'bad seek table frame header');
  }
  const count = table.readUInt32LE(table.length - SEEK_FOOTER_SIZE);
  const frames: SeekFrame[] = new Array<SeekFrame>(count);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const off = SKIPPABLE_HEADER_SIZE + i * ENTRY_SIZE;
    const compressedSize = table.readUInt32LE(off);
    if (compressedSize === 0) throw notABundle(path, `frame ${i} has compressed size 0`);
    frames[i] = { compressedSize, decompressedSize: table.readUInt32LE(off + 4) };
    total += compressedSize;
  }
  if (total + table.length !== fileSize) {
    throw notABundle(path, `frames cover ${total} bytes, expected ${fileSize - table.length}`);
  }
  return frames;
}
