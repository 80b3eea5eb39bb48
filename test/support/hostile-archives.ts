/**
 * Crafted bundles: take a valid one apart into its entries and frames (exact bytes), then put it
 * back together with one thing wrong, the way an attacker with a hex editor and the format spec
 * would, but without the signing key (or, for the strict-JSON cases, with the test's key, so that
 * only strictness can refuse them). Everything else about each variant is valid: the seek table
 * and the index are recomputed to fit unless the variant is about them.
 */
import { readFile } from 'node:fs/promises';
import { buffer } from 'node:stream/consumers';
import { Header, Pax } from 'tar';
import { compress } from 'zstd-napi';
import type { IndexEntry } from '../../src/bundle/airlock-index.js';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import { AIRLOCK_INDEX_MAGIC, MAX_FRAME_CONTENT, TAR_BLOCK } from '../../src/bundle/format.js';
import { decodeSeekTable, encodeSeekTable, parseSeekFooter, SEEK_FOOTER_SIZE, type SeekFrame } from '../../src/bundle/seek-table.js';
import { signBundle, type SigningKey } from '../../src/bundle/signing.js';
import { encodeTarHeader, tarPadding } from '../../src/bundle/tar-entry.js';
import { RAW_BLOCK_MAX, skippableFrame, writeRawBlockHeader, writeRawFrameHeader } from '../../src/bundle/zstd-frames.js';

/** One frame as stored: its bytes and how many bytes it decompresses to (0 for a skippable frame). */
export interface Frame {
  bytes: Buffer;
  content: number;
}

/** One tar entry: what the index will say about it, and the frames that hold it. */
export interface Entry {
  path: string;
  size: number;
  encoding: 'zstd' | 'raw';
  frames: Frame[];
  /** The entry's data (not the header or padding). */
  data: Buffer;
}

export interface Archive {
  entries: Entry[];
  /** The tar end frame. */
  end: Frame;
}

const MTIME = new Date('2024-05-01T12:00:00Z');

/** Read a valid bundle into entries that keep their exact frame bytes. */
export async function explode(path: string): Promise<Archive> {
  const bytes = await readFile(path);
  const { tableSize } = parseSeekFooter(bytes.subarray(bytes.length - SEEK_FOOTER_SIZE), bytes.length, path);
  const seek = decodeSeekTable(bytes.subarray(bytes.length - tableSize), bytes.length, path);
  const reader = await ArchiveReader.open(path);
  try {
    const entries: Entry[] = [];
    let frame = 0;
    let offset = 0;
    for (const e of reader.entries()) {
      const frames: Frame[] = [];
      for (let i = 0; i < e.frames; i++, frame++) {
        const f = seek[frame]!;
        frames.push({ bytes: bytes.subarray(offset, offset + f.compressedSize), content: f.decompressedSize });
        offset += f.compressedSize;
      }
      entries.push({ path: e.path, size: e.size, encoding: e.encoding, frames, data: await buffer(reader.openEntry(e.path)) });
    }
    const end = seek[frame]!;
    return { entries, end: { bytes: bytes.subarray(offset, offset + end.compressedSize), content: end.decompressedSize } };
  } finally {
    await reader.close();
  }
}

/** A copy of `a` whose entries can be replaced without touching the original. */
export function clone(a: Archive): Archive {
  return { entries: a.entries.map((e) => ({ ...e, frames: [...e.frames] })), end: a.end };
}

/** A zstd-compressed frame (Frame_Content_Size set, as libzstd writes it). */
export function zstdFrame(content: Buffer): Frame {
  return { bytes: compress(content), content: content.length };
}

/** A frame of Raw blocks as airlock writes it. */
export function rawFrame(content: Buffer): Frame {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(10);
  writeRawFrameHeader(header, 0, content.length);
  parts.push(header);
  for (let at = 0; at < content.length; at += RAW_BLOCK_MAX) {
    const block = content.subarray(at, at + RAW_BLOCK_MAX);
    const bh = Buffer.alloc(3);
    writeRawBlockHeader(bh, 0, block.length, at + RAW_BLOCK_MAX >= content.length);
    parts.push(bh, block);
  }
  return { bytes: Buffer.concat(parts), content: content.length };
}

/** A skippable frame (decoders skip it; it decompresses to nothing). */
export function skippable(payload: Buffer, magic = 0x184d2a50): Frame {
  return { bytes: skippableFrame(magic, payload), content: 0 };
}

/** A tar header as airlock writes it, or of another type / with another magic. */
export function tarHeader(path: string, size: number, opts: { type?: string; linkpath?: string; gnuMagic?: boolean } = {}): Buffer {
  if (opts.type === undefined && opts.gnuMagic !== true) return encodeTarHeader(path, size, MTIME);
  const block = Buffer.alloc(TAR_BLOCK);
  new Header({
    path,
    size,
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: MTIME,
    type: (opts.type ?? 'File') as 'File',
    ...(opts.linkpath === undefined ? {} : { linkpath: opts.linkpath }),
  }).encode(block, 0);
  if (opts.gnuMagic === true) {
    // Old GNU magic `ustar  \0`: GNU tar then reads the prefix field as times, not as a path.
    block.write('ustar  \0', 257, 'latin1');
    fixChecksum(block);
  }
  return block;
}

/** A PAX extended header (with its data) that overrides the path of the entry after it. */
export function paxPathOverride(overridePath: string): Buffer {
  return new Pax({ path: overridePath, mtime: MTIME }).encode();
}

function fixChecksum(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += block[i]!;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
}

/** Header, data and zero padding. */
export function tarContent(header: Buffer, data: Buffer): Buffer {
  return Buffer.concat([header, data, Buffer.alloc(tarPadding(data.length))]);
}

/** An entry in one frame of the given kind, with an airlock header unless one is given. */
export function makeEntry(path: string, data: Buffer, encoding: 'zstd' | 'raw' = 'zstd', header?: Buffer): Entry {
  const content = tarContent(header ?? tarHeader(path, data.length), data);
  return { path, size: data.length, encoding, data, frames: [encoding === 'raw' ? rawFrame(content) : zstdFrame(content)] };
}

export interface AssembleOptions {
  /** Change the index entries (computed to fit) or replace the whole document. */
  index?: (entries: IndexEntry[]) => unknown;
  /** Change the seek table (computed to fit, the index frame last). */
  seek?: (frames: SeekFrame[]) => SeekFrame[];
  /** Bytes appended after the seek table. */
  trailing?: Buffer;
}

/** Write `a` as a bundle: frames, index frame, seek table; see {@link AssembleOptions}. */
export function assemble(a: Archive, opts: AssembleOptions = {}): Buffer {
  const frames: Frame[] = [];
  const index: IndexEntry[] = [];
  let offset = 0;
  let tar = 0;
  for (const e of a.entries) {
    index.push({ path: e.path, size: e.size, offset, frames: e.frames.length, dataOffset: tar + TAR_BLOCK, encoding: e.encoding });
    for (const f of e.frames) {
      frames.push(f);
      offset += f.bytes.length;
      tar += f.content;
    }
  }
  frames.push(a.end);
  const doc = opts.index === undefined ? { schemaVersion: 1, entries: index } : opts.index(index);
  const indexFrame = skippableFrame(AIRLOCK_INDEX_MAGIC, Buffer.isBuffer(doc) ? doc : Buffer.from(JSON.stringify(doc)));
  let seek: SeekFrame[] = [
    ...frames.map((f) => ({ compressedSize: f.bytes.length, decompressedSize: f.content })),
    { compressedSize: indexFrame.length, decompressedSize: 0 },
  ];
  if (opts.seek !== undefined) seek = opts.seek(seek);
  return Buffer.concat([...frames.map((f) => f.bytes), indexFrame, encodeSeekTable(seek), opts.trailing ?? Buffer.alloc(0)]);
}

/** Replace bundle.json (and re-sign it with `key`, so that only the bytes themselves can be refused). */
export function withBundleJson(a: Archive, bundleJson: Buffer, key: SigningKey): Archive {
  const out = clone(a);
  out.entries[0] = makeEntry('bundle.json', bundleJson);
  if (out.entries[1]?.path === 'bundle.json.sig') out.entries[1] = makeEntry('bundle.json.sig', signBundle(bundleJson, key).bytes);
  return out;
}

/** The 1 GiB split rule, for variants that need a frame boundary elsewhere. */
export const SPLIT = MAX_FRAME_CONTENT;

/**
 * `count` tiny tar entries (`u/0000001` … with one byte of data each, 1 KiB of tar apiece), as
 * zstd frames of at most 64 MiB of content. Headers are patched from one template instead of
 * encoded one by one, so a million take seconds, not minutes.
 */
export function tinyEntryFrames(count: number): Frame[] {
  const template = tarContent(encodeTarHeader('u/0000000', 1, MTIME), Buffer.from('x'));
  const perFrame = (64 << 20) / template.length;
  const frames: Frame[] = [];
  for (let first = 0; first < count; first += perFrame) {
    const n = Math.min(perFrame, count - first);
    const content = Buffer.alloc(n * template.length);
    for (let i = 0; i < n; i++) {
      const at = i * template.length;
      template.copy(content, at);
      content.write(String(first + i).padStart(7, '0'), at + 2, 'latin1');
      fixChecksum(content.subarray(at, at + TAR_BLOCK));
    }
    frames.push(zstdFrame(content));
  }
  return frames;
}
