import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decompress } from 'zstd-napi';
import { ArchiveWriter } from '../../src/bundle/archive-writer.js';
import { sha256Digest } from '../../src/digest/digest.js';
import { VerifyingStream } from '../../src/digest/verify.js';
import { isAirlockError } from '../../src/errors.js';
import { SEEK_FOOTER_SIZE, decodeSeekTable, parseSeekFooter } from '../../src/bundle/seek-table.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';
import { hasTool } from '../support/tools.js';

const MTIME = new Date('2024-05-01T12:00:00Z');

let dir: TempDir;
beforeEach(async () => {
  dir = await makeTempDir('bundle-writer');
});
afterEach(async () => {
  await dir.remove();
});

async function sample(path: string, maxFrameContent?: number) {
  const json = Buffer.from(JSON.stringify({ hello: 'world', n: Array.from({ length: 500 }, (_, i) => i) }));
  const raw = randomBytes(300_000 + 17);
  const text = Buffer.from('layer line\n'.repeat(40_000));
  const w = await ArchiveWriter.create(path, { mtime: MTIME, maxFrameContent });
  await w.addBuffer('bundle.json', json, { compress: true });
  await w.addBuffer('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'), { compress: true });
  await w.addStream('blobs/sha256/aa', raw.length, Readable.from([raw.subarray(0, 1000), raw.subarray(1000)]), { compress: false });
  await w.addStream('blobs/sha256/bb', text.length, Readable.from([text]), { compress: true });
  await w.addBuffer('blobs/sha256/cc', Buffer.alloc(0), { compress: true });
  const result = await w.finish();
  return { json, raw, text, result };
}

describe('ArchiveWriter', () => {
  it.skipIf(!hasTool('zstd'))('writes a file that zstd-napi, zstd -d and tar read', async () => {
    const path = join(dir.path, 'b.tar.zst');
    const { json, raw, text, result } = await sample(path);
    const file = await readFile(path);
    expect(result.bytes).toBe(file.length);
    expect(result.sha256).toBe(execFileSync('sha256sum', [path]).toString().slice(0, 64));
    const viaNapi = decompress(file);
    const viaCli = execFileSync('zstd', ['-dc', path], { maxBuffer: 64 << 20 });
    expect(viaCli.equals(viaNapi)).toBe(true);
    const out = join(dir.path, 'x');
    execFileSync('mkdir', [out]);
    execFileSync('tar', ['--zstd', '-xf', path, '-C', out]);
    expect(await readFile(join(out, 'bundle.json'))).toEqual(json);
    expect((await readFile(join(out, 'blobs/sha256/aa'))).equals(raw)).toBe(true);
    expect((await readFile(join(out, 'blobs/sha256/bb'))).equals(text)).toBe(true);
    expect((await stat(join(out, 'blobs/sha256/cc'))).size).toBe(0);
    expect((await readdir(out)).sort()).toEqual(['blobs', 'bundle.json', 'oci-layout']);
    const listing = execFileSync('tar', ['--zstd', '-tvf', path, '--numeric-owner']).toString();
    expect(listing).toContain('-rw-r--r-- 0/0');
    expect(listing).toContain('2024-05-01');
  });

  it('ends with a seek table that matches the frames', async () => {
    const path = join(dir.path, 'b.tar.zst');
    await sample(path, 64 * 1024);
    const file = await readFile(path);
    const { frames, tableSize } = parseSeekFooter(file.subarray(file.length - SEEK_FOOTER_SIZE), file.length, path);
    const table = decodeSeekTable(file.subarray(file.length - tableSize), file.length, path);
    expect(table).toHaveLength(frames);
    let offset = 0;
    let tar = Buffer.alloc(0);
    for (const f of table) {
      const frame = file.subarray(offset, offset + f.compressedSize);
      const content = decompress(frame);
      expect(content.length).toBe(f.decompressedSize);
      tar = Buffer.concat([tar, content]);
      offset += f.compressedSize;
    }
    expect(offset + tableSize).toBe(file.length);
    expect(tar.equals(decompress(file))).toBe(true);
  });

  it('fails with INTEGRITY when a body is shorter or longer than announced, then refuses more', async () => {
    for (const [label, chunks] of [
      ['short', [Buffer.alloc(10)]],
      ['long', [Buffer.alloc(10), Buffer.alloc(10)]],
    ] as const) {
      const path = join(dir.path, `${label}.tar.zst`);
      const w = await ArchiveWriter.create(path, { mtime: MTIME });
      const err = await w.addStream('blobs/sha256/x', 15, Readable.from(chunks), { compress: false }).catch((e: unknown) => e);
      expect(isAirlockError(err, 'INTEGRITY'), `${label}: ${String(err)}`).toBe(true);
      expect((err as Error).message).toMatch(/blobs\/sha256\/x: expected 15 bytes, got/);
      await expect(w.addBuffer('more', Buffer.from('x'), { compress: true })).rejects.toThrow(/failed earlier/);
      await w.abort();
      expect((await stat(path)).isFile()).toBe(true); // left for the caller to delete
    }
  });

  it('passes on the error of a VerifyingStream body', async () => {
    const path = join(dir.path, 'bad.tar.zst');
    const w = await ArchiveWriter.create(path, { mtime: MTIME });
    const data = Buffer.from('not what was promised');
    const body = Readable.from([data]).pipe(new VerifyingStream({ digest: sha256Digest('other'), size: data.length }, 'blob x'));
    // The writer has all `size` bytes before the stream's end-of-data check fails, and may stop
    // listening first (about one run in three): the error must still reach the writer (asserted
    // below), but a second emission after that must not crash the test process.
    body.on('error', () => undefined);
    await expect(w.addStream('blobs/sha256/x', data.length, body, { compress: true })).rejects.toThrow(/blob x: content does not match its digest/);
    await w.abort();
  });

  it.skipIf(!hasTool('zstd'))('stores a raw entry larger than 128 MiB so that zstd -d reads it with its default memory limit', async () => {
    const path = join(dir.path, 'big.tar.zst');
    const size = 129 << 20;
    const chunk = randomBytes(1 << 20);
    const w = await ArchiveWriter.create(path, { mtime: MTIME });
    const body = Readable.from(
      (function* () {
        for (let i = 0; i < 129; i++) yield chunk;
      })(),
    );
    await w.addStream('blobs/sha256/big', size, body, { compress: false });
    await w.finish();
    expect((await stat(path)).size).toBeLessThan(size + (2 << 20)); // stored, not compressed
    expect(() => execFileSync('zstd', ['-tq', path], { stdio: 'pipe' })).not.toThrow();
  });
});
