/**
 * Split sets: parts written as the archive streams out are exactly the unsplit archive cut at the
 * part size; every reader reads them as one file; a missing, truncated, extra or damaged part is
 * named; an interrupted split write is continued into the same bytes.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import { resumeArchive, type PlannedEntry } from '../../src/bundle/archive-resume.js';
import { ArchiveWriter } from '../../src/bundle/archive-writer.js';
import { readHead } from '../../src/bundle/read-head.js';
import { streamEntries } from '../../src/bundle/entry-stream.js';
import { scanFrames } from '../../src/bundle/frame-scan.js';
import { parseSplitSize } from '../../src/bundle/split-size.js';
import { archiveFiles, damagedParts, hashFilesInWorker, namePartDamage } from '../../src/bundle/split-check.js';
import { checkParts, parsePartName, parseSidecar, partName, partWidth, resolveSplitSet, splitSidecar } from '../../src/bundle/split-set.js';
import { TAR_BLOCK } from '../../src/bundle/format.js';
import { sha256Digest } from '../../src/digest/digest.js';
import { AirlockError, isAirlockError } from '../../src/errors.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const MTIME = new Date('2024-05-01T12:00:00Z');
const MAX_FRAME = 96 * 1024;

interface Input extends PlannedEntry {
  data: Buffer;
}
const input = (path: string, data: Buffer, compress: boolean): Input => ({ path, size: data.length, digest: sha256Digest(data), compress, data });
const INPUTS: Input[] = [
  input('bundle.json', Buffer.from(JSON.stringify({ hello: 'world', n: Array.from({ length: 3000 }, (_, i) => i) })), true),
  input('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'), true),
  input('index.json', Buffer.from('{"schemaVersion":2,"manifests":[]}'), true),
  input('blobs/sha256/01', randomBytes(300_017), false), // Raw blocks, 4 frames
  input('blobs/sha256/02', Buffer.from('layer line\n'.repeat(40_000)), true), // zstd, 5 frames
  input('blobs/sha256/03', randomBytes(200_000), false),
];

async function writeAll(w: ArchiveWriter, entries: readonly Input[]) {
  for (const e of entries) {
    const pieces = [];
    for (let i = 0; i < e.data.length; i += 7001) pieces.push(e.data.subarray(i, i + 7001));
    await w.addStream(
      e.path,
      e.size,
      (async function* () {
        yield* pieces;
      })(),
      { compress: e.compress },
    );
  }
  return w.finish();
}

let dir: TempDir;
let full: Buffer;
let entries: Array<{ path: string; offset: number; encoding: string }>;

beforeAll(async () => {
  dir = await makeTempDir('split');
  const path = join(dir.path, 'full.tar.zst');
  await writeAll(await ArchiveWriter.create(path, { mtime: MTIME, maxFrameContent: MAX_FRAME }), INPUTS);
  full = await readFile(path);
  const r = await ArchiveReader.open(path);
  entries = r.entries();
  await r.close();
});
afterAll(async () => {
  await dir?.remove();
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Write the inputs as a split set of `size` at `base`; the parts, and a sidecar beside them. */
async function writeSplit(name: string, size: number) {
  const base = join(dir.path, name);
  const written = await writeAll(await ArchiveWriter.create(base, { mtime: MTIME, maxFrameContent: MAX_FRAME, split: size }), INPUTS);
  await writeFile(`${base}.sha256`, splitSidecar(base, written.parts!, written.sha256));
  return { base, written };
}

async function readBack(loc: string) {
  const r = await ArchiveReader.open(loc);
  try {
    await r.checkFrames();
    await r.checkEnd();
    for (const e of INPUTS) {
      const chunks: Buffer[] = [];
      for await (const c of r.openEntry(e.path)) chunks.push(c as Buffer);
      expect(sha256Digest(Buffer.concat(chunks)), e.path).toBe(e.digest);
    }
  } finally {
    await r.close();
  }
}

describe('parseSplitSize', () => {
  it('takes SI and binary units as written, and plain bytes', () => {
    expect(parseSplitSize('4GiB')).toBe(4 * 2 ** 30);
    expect(parseSplitSize('4.7GB')).toBe(4_700_000_000);
    expect(parseSplitSize('700MB')).toBe(700_000_000);
    expect(parseSplitSize('512KiB')).toBe(512 * 1024);
    expect(parseSplitSize('1.5MiB')).toBe(1.5 * 2 ** 20);
    expect(parseSplitSize('1000000')).toBe(1_000_000);
  });
  it.each(['', '4 GiBs', '-1MB', 'lots', '1.5', '65535', '1kB', '0.1KiB', '1e9', '99999999999999999TB'])('refuses %j naming --split', (text) => {
    let err: unknown;
    try {
      parseSplitSize(text);
    } catch (e) {
      err = e;
    }
    expect(isAirlockError(err, 'USAGE')).toBe(true);
    expect((err as Error).message).toContain('--split');
  });
});

describe('part names', () => {
  it('have three digits, more when a set has over 999 parts (all of them then, so that name order is part order)', () => {
    expect(partName('/x/m.tar.zst', 7)).toBe('/x/m.tar.zst.part-007');
    expect(partWidth(999)).toBe(3);
    expect(partWidth(1000)).toBe(4);
    expect(partName('m.tar.zst', 7, partWidth(1200))).toBe('m.tar.zst.part-0007');
    expect(parsePartName('/x/m.tar.zst.part-0012')).toEqual({ base: '/x/m.tar.zst', index: 12 });
    expect(parsePartName('/x/m.tar.zst.part-12')).toBeUndefined();
  });
});

describe('checking a set', () => {
  it('checks a set of 200,000 parts (more than a call takes arguments) and names a short one', () => {
    const count = 200_000;
    const parts = Array.from({ length: count }, (_, i) => ({
      index: i + 1,
      path: partName('/m/x.tar.zst', i + 1, partWidth(count)),
      size: i + 1 === count ? 7 : 1024,
    }));
    expect(checkParts('/m/x.tar.zst', parts).size).toBe((count - 1) * 1024 + 7);
    parts[4] = { ...parts[4]!, size: 1000 };
    expect(() => checkParts('/m/x.tar.zst', parts)).toThrow(/^part 5 of 200000 \(x\.tar\.zst\.part-000005\) is truncated/);
  });
});

describe('writing a split set', () => {
  it('cuts the archive into parts of exactly the size (the last one smaller) that join into it byte for byte', async () => {
    const size = 100_000;
    const { base, written } = await writeSplit('even.tar.zst', size);
    const names = (await readdir(dir.path)).filter((n) => n.startsWith('even.tar.zst.part-')).sort();
    const count = Math.ceil(full.length / size);
    expect(names).toEqual(Array.from({ length: count }, (_, i) => `even.tar.zst.part-${String(i + 1).padStart(3, '0')}`));
    const parts = await Promise.all(names.map((n) => readFile(join(dir.path, n))));
    for (const p of parts.slice(0, -1)) expect(p.length).toBe(size);
    expect(parts.at(-1)!.length).toBe(full.length - (count - 1) * size);
    expect(Buffer.concat(parts).equals(full)).toBe(true);
    expect(written.sha256).toBe(sha(full));
    expect(written.parts!.map((p) => p.sha256)).toEqual(parts.map(sha));
    const lines = parseSidecar(await readFile(`${base}.sha256`, 'utf8'));
    expect(lines.parts.map((l) => l.name)).toEqual(names);
    expect(lines.whole).toEqual({ sha256: sha(full), name: 'even.tar.zst' });
  });

  // Where the first cut falls: inside a tar header (Raw entry: frame header 6 + block header 3 bytes before it),
  // inside a blob's data, inside a zstd frame.
  const cases: Array<[string, () => number]> = [
    ['inside a tar header', () => entries.find((e) => e.path === 'blobs/sha256/01')!.offset + 9 + 100],
    ['inside a blob', () => entries.find((e) => e.path === 'blobs/sha256/03')!.offset + 9 + TAR_BLOCK + 5_000],
    ['inside a zstd frame', () => entries.find((e) => e.path === 'blobs/sha256/02')!.offset + 7],
  ];
  it.each(cases)('reads across a boundary %s', async (what, at) => {
    const cut = at();
    const name = `cut-${what.replaceAll(' ', '-')}.tar.zst`;
    const { base } = await writeSplit(name, cut);
    const first = await readFile(partName(base, 1));
    expect(first.length).toBe(cut);
    expect(first.equals(full.subarray(0, cut))).toBe(true);
    // Every form names the set: the first part, any part, the joined name when only parts exist.
    await readBack(partName(base, 1));
    await readBack(partName(base, 2));
    await readBack(base);
    expect((await readHead(partName(base, 1))).bundleJson.equals(INPUTS[0]!.data)).toBe(true);
    // The sequential pass (verify's diagnosis) and the resume scan read across it too.
    const seen: string[] = [];
    await streamEntries(partName(base, 1), async (entry, body) => {
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c as Buffer);
      expect(sha256Digest(Buffer.concat(chunks))).toBe(INPUTS.find((e) => e.path === entry.path)!.digest);
      seen.push(entry.path);
    });
    expect(seen).toEqual(INPUTS.map((e) => e.path));
    expect((await scanFrames(base)).entries.map((e) => e.path)).toEqual(INPUTS.map((e) => e.path));
  });

  it('checks the frames of a Raw-block entry of several frames (the unsplit archive too)', async () => {
    // frame-check read 6 bytes of a further Raw-block frame and then its 10-byte header: a RangeError.
    await readBack(join(dir.path, 'full.tar.zst'));
  });

  it('reads a set of many small parts with a few files open at a time', async () => {
    const { base } = await writeSplit('many.tar.zst', 8_000);
    expect((await readdir(dir.path)).filter((n) => n.startsWith('many.tar.zst.part-')).length).toBeGreaterThan(60);
    await readBack(partName(base, 1));
  });

  it('lists the files of a bundle with their sha256 for a receipt', async () => {
    const { base } = await writeSplit('files.tar.zst', 200_000);
    const files = await archiveFiles(partName(base, 1));
    expect(files.map((f) => f.name)).toEqual(['files.tar.zst.part-001', 'files.tar.zst.part-002', 'files.tar.zst.part-003']);
    expect(files.reduce((n, f) => n + f.size, 0)).toBe(full.length);
    const single = await archiveFiles(join(dir.path, 'full.tar.zst'));
    expect(single).toEqual([{ name: 'full.tar.zst', path: join(dir.path, 'full.tar.zst'), size: full.length, sha256: sha(full) }]);
  });

  it('refuses a FIFO or a device among the files it hashes, at once: no wait for a writer, no endless read', async () => {
    // A hostile medium (or a part swapped after it was checked) holds a FIFO: opening it blocks a
    // worker in the kernel, where terminate() cannot reach it, and the process never exits.
    const fifo = join(dir.path, 'fifo.tar.zst');
    execFileSync('mkfifo', [fifo]);
    await expect(hashFilesInWorker([fifo])).rejects.toMatchObject({ code: 'IO', message: expect.stringContaining('not a regular file') });
    await expect(hashFilesInWorker(['/dev/zero'])).rejects.toMatchObject({ code: 'IO', message: expect.stringContaining('not a regular file') });
  }, 10_000);
});

describe('a set that is not whole', () => {
  async function failure(p: Promise<unknown>): Promise<AirlockError> {
    try {
      await p;
    } catch (err) {
      if (err instanceof AirlockError) return err;
      throw err;
    }
    throw new Error('expected a failure');
  }

  it('names a missing part, the last one included (the sidecar knows how many there are)', async () => {
    const { base } = await writeSplit('missing.tar.zst', 150_000);
    await rm(partName(base, 2));
    // The head alone is in the first part: it can be read from there (inspect, --since).
    expect((await readHead(partName(base, 1))).bundleJson.equals(INPUTS[0]!.data)).toBe(true);
    expect((await failure(readHead(base))).message).toBe('part 2 of 4 (missing.tar.zst.part-002) is missing: copy it again');
    const err = await failure(ArchiveReader.open(partName(base, 1)));
    expect(err.code).toBe('INTEGRITY');
    expect(err.message).toBe('part 2 of 4 (missing.tar.zst.part-002) is missing: copy it again');
    expect(err.details).toMatchObject({ part: 2, parts: 4 });
    const last = await writeSplit('missing-last.tar.zst', 150_000);
    await rm(partName(last.base, 4));
    expect((await failure(ArchiveReader.open(last.base))).message).toBe('part 4 of 4 (missing-last.tar.zst.part-004) is missing: copy it again');
  });

  it('without a sidecar, says that a part after the last one found may be missing', async () => {
    const { base } = await writeSplit('nosidecar.tar.zst', 150_000);
    await rm(`${base}.sha256`);
    await rm(partName(base, 4));
    const err = await failure(ArchiveReader.open(partName(base, 1)));
    expect(err.code).toBe('INTEGRITY');
    expect(err.message).toMatch(/the last part found, nosidecar\.tar\.zst\.part-003, does not end the archive/);
    expect(err.details).toMatchObject({ part: 4, file: 'nosidecar.tar.zst.part-004' });
  });

  it('names a truncated part, and an extra one', async () => {
    const { base } = await writeSplit('short.tar.zst', 150_000);
    await truncate(partName(base, 3), 1000);
    expect((await failure(readHead(base))).message).toMatch(
      /^part 3 of 4 \(short\.tar\.zst\.part-003\) is truncated \(1000 bytes, the other parts have 150000\)/,
    );
    const extra = await writeSplit('extra.tar.zst', 150_000);
    await writeFile(partName(extra.base, 5), 'x');
    expect((await failure(readHead(extra.base))).message).toMatch(/^part 5 of 4 \(extra\.tar\.zst\.part-005\) is not part of this set/);
  });

  it('names a damaged part from the sidecar when the content fails its check', async () => {
    const { base } = await writeSplit('flip.tar.zst', 150_000);
    const p3 = partName(base, 3);
    const bytes = await readFile(p3);
    bytes[500]! ^= 0xff;
    await writeFile(p3, bytes);
    const set = (await resolveSplitSet(base))!;
    const damaged = damagedParts(set, await hashFilesInWorker(set.parts.map((p) => p.path)));
    expect(damaged.map((e) => e.message)).toEqual(['part 3 of 4 (flip.tar.zst.part-003) is damaged: copy it again']);
    const named = (await namePartDamage(set, new AirlockError('INTEGRITY', 'blobs/sha256/01 is damaged'))) as AirlockError;
    expect(named.message).toBe('part 3 of 4 (flip.tar.zst.part-003) is damaged: copy it again');
    expect(named.hint).toContain('blobs/sha256/01 is damaged');
  });
});

describe('continuing an interrupted split write', () => {
  // Cuts: inside part 1, exactly at a part boundary, inside a later part with a later part left too.
  it.each([70_000, 200_000, 390_123])('continues a set cut at %i bytes into the same parts', async (cut) => {
    const size = 100_000;
    const base = join(dir.path, `resume-${cut}.tar.zst`);
    // What an interrupted run leaves: the full parts before the cut, the one it was in cut short.
    for (let i = 0; i * size < cut; i++) await writeFile(partName(base, i + 1), full.subarray(i * size, Math.min(cut, (i + 1) * size)));
    const r = await resumeArchive(base, { mtime: MTIME, maxFrameContent: MAX_FRAME, planned: INPUTS, split: size, continuePartial: false });
    expect(r.keptBytes).toBeGreaterThan(0);
    const written = await writeAll(r.writer as ArchiveWriter, INPUTS.slice(r.kept));
    const names = (await readdir(dir.path)).filter((n) => n.startsWith(`resume-${cut}.tar.zst.part-`)).sort();
    const joined = Buffer.concat(await Promise.all(names.map((n) => readFile(join(dir.path, n)))));
    expect(joined.equals(full)).toBe(true);
    expect(written.sha256).toBe(sha(full));
    expect(written.parts!.length).toBe(Math.ceil(full.length / size));
  });
});
