/**
 * Resuming a cut bundle file: scanFrames finds the complete entries of any prefix, resumeArchive
 * keeps those that match the plan, and the finished file is byte-identical to one written in one go.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import { resumeArchive, type PlannedEntry } from '../../src/bundle/archive-resume.js';
import { ArchiveWriter } from '../../src/bundle/archive-writer.js';
import { scanFrames } from '../../src/bundle/frame-scan.js';
import { sha256Digest } from '../../src/digest/digest.js';
import { verifiedChunks } from '../../src/digest/verify.js';
import { isAirlockError } from '../../src/errors.js';
import { RAW_BLOCK_MAX } from '../../src/bundle/zstd-frames.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';
import { hasTool } from '../support/tools.js';

const MTIME = new Date('2024-05-01T12:00:00Z');
/** Small frames, so that entries span several frames and cuts fall between them too. */
const MAX_FRAME = 96 * 1024;

interface Input extends PlannedEntry {
  data: Buffer;
}

const rand = (n: number): Buffer => randomBytes(n);
const text = (line: string, n: number): Buffer => Buffer.from(line.repeat(n));

function input(path: string, data: Buffer, compress: boolean): Input {
  return { path, size: data.length, digest: sha256Digest(data), compress, data };
}

const INPUTS: Input[] = [
  input('bundle.json', Buffer.from(JSON.stringify({ hello: 'world', n: Array.from({ length: 3000 }, (_, i) => i) }, null, 2)), true),
  input('bundle.json.sig', Buffer.from('{"signature":"x"}\n'), true),
  input('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'), true),
  input('index.json', Buffer.from('{"schemaVersion":2,"manifests":[]}'), true),
  input('blobs/sha256/01', rand(300_017), false), // raw, 4 frames
  input('blobs/sha256/02', text('layer line\n', 40_000), true), // zstd, 5 frames
  input('blobs/sha256/03', Buffer.alloc(0), true),
  input('blobs/sha256/04', rand(1000), false), // raw, 1 frame
  input('blobs/sha256/05', Buffer.concat([rand(50_000), text('mixed\n', 20_000)]), true),
  input('blobs/sha256/06', rand(200_000), false),
];

/** Bytes each input's source handed out in the last run. */
const served = new Map<string, number>();

async function add(w: ArchiveWriter, e: Input): Promise<void> {
  if (e.compress && e.size < 4096) {
    served.set(e.path, (served.get(e.path) ?? 0) + e.size);
    await w.addBuffer(e.path, e.data, { compress: true });
    return;
  }
  const pieces = [];
  for (let i = 0; i < e.data.length; i += 7001) pieces.push(e.data.subarray(i, i + 7001));
  const counted = Readable.from(pieces).map((c: Buffer) => {
    served.set(e.path, (served.get(e.path) ?? 0) + c.length);
    return c;
  });
  await w.addStream(e.path, e.size, counted, { compress: e.compress });
}

let dir: TempDir;
let full: Buffer;
let fullSha: string;
/** End offset of each entry in {@link full}. */
let ends: number[];

beforeAll(async () => {
  dir = await makeTempDir('bundle-resume');
  const path = join(dir.path, 'full.tar.zst');
  const w = await ArchiveWriter.create(path, { mtime: MTIME, maxFrameContent: MAX_FRAME });
  for (const e of INPUTS) await add(w, e);
  fullSha = (await w.finish()).sha256;
  full = await readFile(path);
  const reader = await ArchiveReader.open(path);
  const offsets = reader.entries().map((e) => e.offset);
  await reader.close();
  const scan = await scanFrames(path);
  ends = [...offsets.slice(1), scan.end];
});

afterAll(async () => {
  await dir?.remove();
});

/** Write `full[0, cut)` as a partial file, resume it, finish it; return what happened. */
async function resumeFrom(partial: Buffer, name: string, opts: { planned?: Input[]; mtime?: Date } = {}) {
  const planned = opts.planned ?? INPUTS;
  const path = join(dir.path, name);
  await writeFile(path, partial);
  served.clear();
  const checked: number[] = [];
  const r = await resumeArchive(path, {
    mtime: opts.mtime ?? MTIME,
    maxFrameContent: MAX_FRAME,
    planned,
    onBytes: (n) => checked.push(n),
  });
  for (const e of planned.slice(r.kept)) await add(r.writer, e);
  const result = await r.writer.finish();
  const bytes = await readFile(path);
  return { ...r, result, bytes, path, checkedBytes: checked.reduce((a, b) => a + b, 0) };
}

const completeBefore = (cut: number): number => ends.filter((end) => end <= cut).length;

describe('scanFrames', () => {
  it('finds every entry of a complete file, as its index records them', async () => {
    const path = join(dir.path, 'scan.tar.zst');
    await writeFile(path, full);
    const reader = await ArchiveReader.open(path);
    const indexed = reader.entries();
    await reader.close();
    const scan = await scanFrames(path);
    expect(scan.entries.map(({ frameSizes: _, ...e }) => e)).toEqual(indexed);
    expect(scan.entries.find((e) => e.path === 'blobs/sha256/01')?.frames).toBe(4);
    expect(scan.entries.find((e) => e.path === 'blobs/sha256/02')?.encoding).toBe('zstd');
    expect(scan.stopped).toMatch(/tar end/);
  });

  it('stops at the first incomplete or invalid frame', async () => {
    const path = join(dir.path, 'scan-cut.tar.zst');
    await writeFile(path, full.subarray(0, ends[4]! - 5));
    const cut = await scanFrames(path);
    expect(cut.entries.length).toBe(4);
    expect(cut.end).toBe(ends[3]);
    expect(cut.stopped).toMatch(/ends inside a frame/);
    const garbage = Buffer.from(full.subarray(0, ends[5]!));
    garbage.fill(0x41, ends[2]!, ends[2]! + 4); // the magic of entry 3's first frame
    await writeFile(path, garbage);
    const bad = await scanFrames(path);
    expect(bad.entries.length).toBe(3);
    expect(bad.stopped).toMatch(/no zstd frame/);
    await writeFile(path, Buffer.alloc(0));
    expect((await scanFrames(path)).entries).toEqual([]);
  });
});

describe('resumeArchive', () => {
  it('continues a file cut anywhere into the same bytes, rewriting only what was cut off', async () => {
    const cuts = new Set<number>([0, 1, 5, 100, 511, 600, full.length, full.length - 1, ends.at(-1)!, ends.at(-1)! + 3]);
    for (const end of ends) for (const d of [-1, 0, 1, 13]) cuts.add(end + d);
    for (let i = 0; i < ends.length; i++) {
      const start = i === 0 ? 0 : ends[i - 1]!;
      cuts.add(Math.floor((start + ends[i]!) / 2)); // inside a raw or a compressed frame
    }
    let sampled = 0;
    for (const cut of [...cuts].filter((c) => c >= 0 && c <= full.length).sort((a, b) => a - b)) {
      const r = await resumeFrom(full.subarray(0, cut), `cut-${cut}.partial`);
      const expectKept = Math.min(completeBefore(cut), INPUTS.length);
      expect({ cut, kept: r.kept }).toEqual({ cut, kept: expectKept });
      expect(r.bytes.equals(full)).toBe(true);
      expect(r.result.sha256).toBe(fullSha);
      expect(r.result.bytes).toBe(full.length);
      expect(r.keptBytes).toBe(expectKept === 0 ? 0 : ends[expectKept - 1]);
      expect(r.reusedBytes).toBe(INPUTS.slice(0, expectKept).reduce((n, e) => n + e.size, 0));
      // Sources before the cut were not read again; those after were read once.
      for (const [i, e] of INPUTS.entries())
        expect({ cut, path: e.path, read: served.get(e.path) ?? 0 }).toEqual({ cut, path: e.path, read: i < expectKept ? 0 : e.size });
      // Each kept byte was read back once, nothing more.
      expect(r.checkedBytes).toBe(r.keptBytes);
      // The zstd and tar tools read the result too, where they are (always in `npm test`).
      if (sampled++ % 9 === 0 && hasTool('zstd')) {
        execFileSync('zstd', ['-tq', r.path]);
        const listing = execFileSync('tar', ['--zstd', '-tf', r.path]).toString().trim().split('\n');
        expect(listing).toEqual(INPUTS.map((e) => e.path));
      }
    }
  });

  it('drops a kept entry whose bytes were changed, and everything after it', async () => {
    const cut = ends[8]!;
    const damage = async (at: number, name: string, value?: number) => {
      const partial = Buffer.from(full.subarray(0, cut));
      partial[at] = value ?? partial[at]! ^ 0x10;
      return resumeFrom(partial, name);
    };
    // In the data of a raw blob (entry 4, frames of Raw blocks): only its digest can tell.
    const raw = await damage(ends[3]! + 20_000, 'flip-raw.partial');
    expect(raw.kept).toBe(4);
    expect(raw.stopped).toMatch(/blobs\/sha256\/01 has digest/);
    expect(raw.bytes.equals(full)).toBe(true);
    // In a compressed frame (entry 5).
    const zst = await damage(Math.floor((ends[4]! + ends[5]!) / 2), 'flip-zstd.partial');
    expect(zst.kept).toBe(5);
    expect(zst.bytes.equals(full)).toBe(true);
    // A raw block header (entry 7's only frame: 10-byte frame header, then the block header).
    const block = await damage(ends[6]! + 11, 'flip-block.partial');
    expect(block.kept).toBe(7);
    expect(block.bytes.equals(full)).toBe(true);
    // In the head.
    const head = await damage(200, 'flip-head.partial');
    expect(head.kept).toBe(0);
    expect(head.bytes.equals(full)).toBe(true);
    // A hole of zeros where a write never landed (kill -9 with two writes in flight).
    const hole = Buffer.from(full.subarray(0, cut));
    const at = ends[5]! + 1000;
    hole.fill(0, at, at + 4000);
    const holed = await resumeFrom(hole, 'hole.partial');
    expect(holed.kept).toBe(ends.findIndex((end) => end > at));
    expect(holed.bytes.equals(full)).toBe(true);
  });

  it('keeps only the prefix that matches the plan: order, content, creation time', async () => {
    const partial = full.subarray(0, ends[7]!);
    const swapped = [...INPUTS.slice(0, 5), INPUTS[6]!, INPUTS[5]!, ...INPUTS.slice(7)];
    const reordered = await resumeFrom(partial, 'reordered.partial', { planned: swapped });
    expect(reordered.kept).toBe(5);
    expect(reordered.stopped).toMatch(/found where/);

    const changed = INPUTS.map((e) => (e.path === 'index.json' ? input('index.json', Buffer.from('{"schemaVersion":2,"manifests":[{}]}'), true) : e));
    const other = await resumeFrom(partial, 'changed.partial', { planned: changed });
    expect(other.kept).toBe(3);

    const later = await resumeFrom(partial, 'mtime.partial', { mtime: new Date(MTIME.getTime() + 1000) });
    expect(later.kept).toBe(0);
    expect(later.stopped).toMatch(/tar header differs/);

    const fewer = await resumeFrom(partial, 'fewer.partial', { planned: INPUTS.slice(0, 2) });
    expect(fewer.kept).toBe(2);
    const h = createHash('sha256').update(fewer.bytes).digest('hex');
    expect(fewer.result.sha256).toBe(h);
  });

  it('walks real multi-block zstd frames (default frame size, libzstd workers)', async () => {
    const big = [
      input('bundle.json', Buffer.from('{}\n'), true),
      input('blobs/sha256/a', Buffer.concat([rand(1 << 20), text('compressible text\n', 150_000), rand(300_000)]), true),
      input('blobs/sha256/b', rand(2 << 20), false),
      input('blobs/sha256/c', text('more text\n', 300_000), true),
    ];
    const path = join(dir.path, 'big.tar.zst');
    const w = await ArchiveWriter.create(path, { mtime: MTIME });
    for (const e of big) await add(w, e);
    const whole = await w.finish();
    const bytes = await readFile(path);
    const scan = await scanFrames(path);
    expect(scan.entries.map((e) => [e.path, e.frames])).toEqual(big.map((e) => [e.path, 1]));
    const bigEnds = scan.entries.map((e) => e.offset + e.frameSizes[0]!.compressedSize);
    for (const cut of [bigEnds[0]! + 5000, bigEnds[1]! - 1, bigEnds[1]!, bigEnds[2]! + 70_000, bigEnds[3]!]) {
      const partial = join(dir.path, `big-${cut}.partial`);
      await writeFile(partial, bytes.subarray(0, cut));
      const r = await resumeArchive(partial, { mtime: MTIME, planned: big });
      expect({ cut, kept: r.kept }).toEqual({ cut, kept: bigEnds.filter((end) => end <= cut).length });
      for (const e of big.slice(r.kept)) await add(r.writer, e);
      expect((await r.writer.finish()).sha256).toBe(whole.sha256);
      expect((await readFile(partial)).equals(bytes)).toBe(true);
    }
  });

  it('continues inside a raw blob: keeps its complete blocks, fetches only the rest, same bytes', async () => {
    // Default frame size: one frame per entry, a 2 MiB raw blob is 16 blocks of 128 KiB.
    const blobs = [
      input('bundle.json', Buffer.from('{}\n'), true),
      input('blobs/sha256/a', rand(100_000), false),
      input('blobs/sha256/b', rand((2 << 20) + 777), false),
      input('blobs/sha256/c', text('tail text\n', 30_000), true),
    ];
    const path = join(dir.path, 'inside.tar.zst');
    const w = await ArchiveWriter.create(path, { mtime: MTIME });
    for (const e of blobs) await add(w, e);
    const whole = await w.finish();
    const bytes = await readFile(path);
    const scan = await scanFrames(path);
    const [, , b] = scan.entries;
    const bEnd = b!.offset + b!.frameSizes[0]!.compressedSize;
    for (const cut of [b!.offset + 5, b!.offset + 131_000, b!.offset + 10 + 3 + RAW_BLOCK_MAX, b!.offset + 1_000_001, bEnd - 900, bEnd - 1]) {
      const partial = join(dir.path, `inside-${cut}.partial`);
      await writeFile(partial, bytes.subarray(0, cut));
      served.clear();
      const r = await resumeArchive(partial, { mtime: MTIME, planned: blobs, continuePartial: true });
      expect({ cut, kept: r.kept }).toEqual({ cut, kept: 2 });
      const entry = blobs[2]!;
      // Whole blocks only, never the last one (the writer must still have bytes to add).
      const expected =
        Math.min(Math.floor((cut - b!.offset - 10) / (RAW_BLOCK_MAX + 3)), Math.ceil((entry.size + 512) / RAW_BLOCK_MAX) - 1) * RAW_BLOCK_MAX - 512;
      expect({ cut, data: r.part?.dataBytes ?? 0 }).toEqual({ cut, data: Math.max(0, expected) });
      if (r.part !== undefined) {
        const rest = entry.data.subarray(r.part.dataBytes);
        const pieces = [];
        for (let i = 0; i < rest.length; i += 50_001) pieces.push(rest.subarray(i, i + 50_001));
        const counted = Readable.from(pieces).map((c: Buffer) => {
          served.set(entry.path, (served.get(entry.path) ?? 0) + c.length);
          return c;
        });
        await r.writer.continueStream(
          entry.path,
          entry.size,
          verifiedChunks(counted, entry, entry.path, undefined, { bytes: r.part.dataBytes, hash: r.part.hash }),
        );
        expect(served.get(entry.path)).toBe(entry.size - r.part.dataBytes);
      }
      for (const e of blobs.slice(r.kept + (r.part === undefined ? 0 : 1))) await add(r.writer, e);
      expect((await r.writer.finish()).sha256).toBe(whole.sha256);
      expect((await readFile(partial)).equals(bytes)).toBe(true);
    }
    if (hasTool('zstd')) expect(execFileSync('tar', ['--zstd', '-tf', path]).toString().trim().split('\n')).toEqual(blobs.map((e) => e.path));
  });

  it('a kept part whose bytes were changed fails the digest over the whole blob', async () => {
    const blobs = [input('bundle.json', Buffer.from('{}\n'), true), input('blobs/sha256/x', rand(1 << 20), false)];
    const path = join(dir.path, 'inside-bad.tar.zst');
    const w = await ArchiveWriter.create(path, { mtime: MTIME });
    for (const e of blobs) await add(w, e);
    await w.finish();
    const bytes = Buffer.from(await readFile(path));
    const x = (await scanFrames(path)).entries[1]!;
    bytes[x.offset + 10 + 3 + 5000]! ^= 1;
    const partial = join(dir.path, 'inside-bad.partial');
    await writeFile(partial, bytes.subarray(0, x.offset + 600_000));
    const r = await resumeArchive(partial, { mtime: MTIME, planned: blobs, continuePartial: true });
    expect(r.part?.dataBytes).toBe(4 * RAW_BLOCK_MAX - 512);
    const e = blobs[1]!;
    const rest = Readable.from([e.data.subarray(r.part!.dataBytes)]);
    const err = await r.writer
      .continueStream(e.path, e.size, verifiedChunks(rest, e, e.path, undefined, { bytes: r.part!.dataBytes, hash: r.part!.hash }))
      .catch((x: unknown) => x);
    expect(isAirlockError(err, 'INTEGRITY')).toBe(true);
    await r.writer.abort();
  });

  it('keeps an entry whose frame decodes to exactly one 1 MiB decoding step', async () => {
    // 512 header bytes + 1 MiB - 512 of data: one frame of exactly 1 MiB, which the check used to
    // call incomplete (libzstd, asked again after a full buffer, hints at the next frame).
    const blobs = [
      input('bundle.json', Buffer.from('{}\n'), true),
      input('blobs/sha256/m', Buffer.alloc((1 << 20) - 512, 7), true),
      input('blobs/sha256/z', rand(5000), false),
    ];
    const path = join(dir.path, 'mib.tar.zst');
    const w = await ArchiveWriter.create(path, { mtime: MTIME });
    for (const e of blobs) await add(w, e);
    await w.finish();
    const bytes = await readFile(path);
    const z = (await scanFrames(path)).entries[2]!;
    const partial = join(dir.path, 'mib.partial');
    await writeFile(partial, bytes.subarray(0, z.offset + 100));
    const r = await resumeArchive(partial, { mtime: MTIME, planned: blobs });
    expect({ kept: r.kept, stopped: r.stopped }).toEqual({ kept: 2, stopped: expect.any(String) as string });
    await r.writer.abort();
  });
});
