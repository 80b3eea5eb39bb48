import { randomBytes } from 'node:crypto';
import { open, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import { ArchiveWriter } from '../../src/bundle/archive-writer.js';
import { AIRLOCK_INDEX_MAGIC } from '../../src/bundle/format.js';
import { readHead } from '../../src/bundle/read-head.js';
import { decodeSeekTable, encodeSeekTable, parseSeekFooter, SEEK_FOOTER_SIZE } from '../../src/bundle/seek-table.js';
import { skippableFrame } from '../../src/bundle/zstd-frames.js';
import { isAirlockError } from '../../src/errors.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const MTIME = new Date('2024-05-01T12:00:00Z');

let dir: TempDir;
beforeEach(async () => {
  dir = await makeTempDir('bundle-reader');
});
afterEach(async () => {
  await dir.remove();
});

interface Written {
  path: string;
  contents: Map<string, Buffer>;
}

/** A bundle with compressed and raw entries; 64 KiB frames so big entries span several. */
async function writeSample(signed = true): Promise<Written> {
  const path = join(dir.path, 'b.tar.zst');
  const contents = new Map<string, Buffer>([
    ['bundle.json', Buffer.from(JSON.stringify({ schemaVersion: 1, pad: 'x'.repeat(3000) }))],
    ...(signed ? ([['bundle.json.sig', Buffer.from('{"sig":true}')]] as const) : []),
    ['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')],
    ['blobs/sha256/raw', randomBytes(200_003)],
    ['blobs/sha256/text', Buffer.from('compressible line\n'.repeat(20_000))],
    ['blobs/sha256/small', Buffer.from('tiny')],
    ['blobs/sha256/empty', Buffer.alloc(0)],
  ]);
  const w = await ArchiveWriter.create(path, { mtime: MTIME, maxFrameContent: 64 * 1024 });
  for (const [name, data] of contents) {
    const compress = name !== 'blobs/sha256/raw';
    if (name.startsWith('blobs/')) await w.addStream(name, data.length, Readable.from([data]), { compress });
    else await w.addBuffer(name, data, { compress });
  }
  await w.finish();
  return { path, contents };
}

async function expectIntegrity(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isAirlockError(err, 'INTEGRITY'), String(err)).toBe(true);
  expect((err as Error).message).toMatch(pattern);
}

describe('ArchiveReader', () => {
  it('lists entries with frames and offsets', async () => {
    const { path, contents } = await writeSample();
    const reader = await ArchiveReader.open(path);
    try {
      const entries = reader.entries();
      expect(entries.map((e) => e.path)).toEqual([...contents.keys()]);
      const raw = reader.entry('blobs/sha256/raw')!;
      expect(raw.encoding).toBe('raw');
      expect(raw.frames).toBe(4); // 512 + 200,003 + padding over 64 KiB frames
      expect(reader.entry('blobs/sha256/text')!.frames).toBe(6);
      expect(entries[0]).toMatchObject({ offset: 0, dataOffset: 512, frames: 1, encoding: 'zstd' });
    } finally {
      await reader.close();
    }
  });

  it('returns the exact bytes of compressed, raw, multi-frame and empty entries', async () => {
    const { path, contents } = await writeSample();
    const reader = await ArchiveReader.open(path);
    try {
      for (const [name, data] of contents) {
        const got = await buffer(reader.openEntry(name));
        expect(got.equals(data), name).toBe(true);
      }
      // Two entries read at the same time share the file handle.
      const [a, b] = await Promise.all([buffer(reader.openEntry('blobs/sha256/raw')), buffer(reader.openEntry('blobs/sha256/text'))]);
      expect(a.equals(contents.get('blobs/sha256/raw')!)).toBe(true);
      expect(b.equals(contents.get('blobs/sha256/text')!)).toBe(true);
      expect(() => reader.openEntry('blobs/sha256/missing')).toThrow(/no entry/);
    } finally {
      await reader.close();
    }
  });

  it('inflates a highly compressible frame step by step', async () => {
    const path = join(dir.path, 'zeros.tar.zst');
    const zeros = Buffer.alloc(5 << 20);
    const w = await ArchiveWriter.create(path, { mtime: MTIME });
    await w.addBuffer('bundle.json', Buffer.from('{}'), { compress: true });
    await w.addBuffer('blobs/sha256/zeros', zeros, { compress: true });
    await w.finish();
    const reader = await ArchiveReader.open(path);
    try {
      expect(reader.size).toBeLessThan(4096);
      const chunks: Buffer[] = [];
      for await (const c of reader.openEntry('blobs/sha256/zeros')) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(zeros)).toBe(true);
    } finally {
      await reader.close();
    }
  });

  it('reads an entry whose frame decodes to exactly one 1 MiB decoding step', async () => {
    // The tar entry of 1 MiB - 512 bytes fills one frame of exactly 1 MiB; it used to read as
    // "frame 1 is incomplete" (libzstd, asked again after a full buffer, hints at the next frame).
    const path = join(dir.path, 'mib.tar.zst');
    const data = Buffer.alloc((1 << 20) - 512, 7);
    const w = await ArchiveWriter.create(path, { mtime: MTIME });
    await w.addBuffer('bundle.json', Buffer.from('{}'), { compress: true });
    await w.addBuffer('blobs/sha256/mib', data, { compress: true });
    await w.finish();
    const reader = await ArchiveReader.open(path);
    try {
      expect((await buffer(reader.openEntry('blobs/sha256/mib'))).equals(data)).toBe(true);
    } finally {
      await reader.close();
    }
  });

  it('refuses a truncated file or a file that is not a bundle', async () => {
    const { path } = await writeSample();
    const size = (await readFile(path)).length;
    await truncate(path, size - 3);
    await expectIntegrity(ArchiveReader.open(path), /not an airlock bundle or truncated/);
    const other = join(dir.path, 'other.zst');
    await writeFile(other, randomBytes(5000));
    await expectIntegrity(ArchiveReader.open(other), /not an airlock bundle or truncated/);
  });

  it('refuses an index that disagrees with the seek table', async () => {
    const { path } = await writeSample();
    const file = await readFile(path);
    const { tableSize } = parseSeekFooter(file.subarray(file.length - SEEK_FOOTER_SIZE), file.length, path);
    const frames = decodeSeekTable(file.subarray(file.length - tableSize), file.length, path);
    const indexFrame = frames.at(-1)!;
    const indexStart = file.length - tableSize - indexFrame.compressedSize;
    const index = JSON.parse(file.subarray(indexStart + 8, file.length - tableSize).toString()) as { entries: Array<{ dataOffset: number }> };
    for (const mutate of [
      (i: typeof index) => (i.entries[2]!.dataOffset += 512),
      (i: typeof index) => i.entries.pop(),
      (i: typeof index) => ((i.entries[1] as Record<string, unknown>)['path'] = '../x'),
    ]) {
      const copy = structuredClone(index);
      mutate(copy);
      const frame = skippableFrame(AIRLOCK_INDEX_MAGIC, Buffer.from(JSON.stringify(copy)));
      const table = encodeSeekTable([...frames.slice(0, -1), { compressedSize: frame.length, decompressedSize: 0 }]);
      const bad = join(dir.path, 'bad-index.tar.zst');
      await writeFile(bad, Buffer.concat([file.subarray(0, indexStart), frame, table]));
      await expectIntegrity(ArchiveReader.open(bad), /not an airlock bundle or truncated \(airlock index: /);
    }
  });

  it('detects a damaged raw frame when reading the entry', async () => {
    const { path } = await writeSample();
    const reader = await ArchiveReader.open(path);
    const raw = reader.entry('blobs/sha256/raw')!;
    await reader.close();
    const fh = await open(path, 'r+');
    await fh.write(Buffer.from([0xff]), 0, 1, raw.offset + 5); // Window_Descriptor of the first frame
    await fh.close();
    const again = await ArchiveReader.open(path);
    try {
      await expectIntegrity(buffer(again.openEntry('blobs/sha256/raw')), /index says Raw blocks, but frame \d+ has another header/);
    } finally {
      await again.close();
    }
  });
});

describe('readHead', () => {
  it('reads bundle.json and its signature from a truncated copy', async () => {
    const { path, contents } = await writeSample();
    const head = join(dir.path, 'head.tar.zst');
    await writeFile(head, (await readFile(path)).subarray(0, 4096));
    const got = await readHead(head);
    expect(got.bundleJson.equals(contents.get('bundle.json')!)).toBe(true);
    expect(got.signature?.equals(contents.get('bundle.json.sig')!)).toBe(true);
  });

  it('reads an unsigned head and refuses what is too short or too big', async () => {
    const { path, contents } = await writeSample(false);
    const got = await readHead(path);
    expect(got.bundleJson.equals(contents.get('bundle.json')!)).toBe(true);
    expect(got.signature).toBeUndefined();
    await expectIntegrity(readHead(path, 100), /more than the 100 accepted/);
    const cut = join(dir.path, 'cut.tar.zst');
    await writeFile(cut, (await readFile(path)).subarray(0, 40));
    await expectIntegrity(readHead(cut), /file ends before bundle.json/);
  });
});
