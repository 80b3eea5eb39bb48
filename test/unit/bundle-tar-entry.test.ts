import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeTarHeader, encodeTarHeader, tarEntrySize, tarPadding, unsafePathReason } from '../../src/bundle/tar-entry.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const MTIME = new Date('2024-05-01T12:00:00.750Z');
const TEN_GIB = 10 * 1024 ** 3;

let dir: TempDir;
beforeEach(async () => {
  dir = await makeTempDir('bundle-tar');
});
afterEach(async () => {
  await dir.remove();
});

describe('tar headers', () => {
  it('encodes a plain ustar regular file', () => {
    const block = encodeTarHeader('blobs/sha256/' + 'a'.repeat(64), 1234, MTIME);
    expect(block.length).toBe(512);
    expect(block.subarray(257, 265).toString('latin1')).toBe('ustar\u000000');
    const h = decodeTarHeader(block)!;
    expect(h).toMatchObject({ path: 'blobs/sha256/' + 'a'.repeat(64), size: 1234, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', type: 'File' });
    expect(h.mtime?.toISOString()).toBe('2024-05-01T12:00:00.000Z');
  });

  it('writes sizes of 8 GiB and more in base-256, which GNU tar reads', async () => {
    const block = encodeTarHeader('blobs/sha256/big', TEN_GIB, MTIME);
    expect(block[124]).toBe(0x80); // base-256 marker in the size field
    expect(decodeTarHeader(block)!.size).toBe(TEN_GIB);
    // Header only, no data: GNU tar lists the entry, then complains about the missing data.
    const path = join(dir.path, 'big.tar');
    await writeFile(path, block);
    const listing = spawnSync('tar', ['-tvf', path], { encoding: 'utf8' });
    expect(listing.stdout).toMatch(new RegExp(`^-rw-r--r-- 0/0\\s+${TEN_GIB} 2024-05-01 \\d\\d:00 blobs/sha256/big$`, 'm'));
  });

  it('refuses names that are unsafe or need PAX', () => {
    expect(() => encodeTarHeader('../x', 1, MTIME)).toThrow(/'..' in path/);
    expect(() => encodeTarHeader('a'.repeat(120), 1, MTIME)).toThrow(/does not fit a ustar header/);
    expect(() => encodeTarHeader('dir/' + 'b'.repeat(99), 1, MTIME)).not.toThrow(); // fits via the prefix field
  });

  it('computes padding and path safety', () => {
    expect([tarPadding(0), tarPadding(1), tarPadding(512), tarPadding(513)]).toEqual([0, 511, 0, 511]);
    expect(tarEntrySize(1)).toBe(1024);
    expect(unsafePathReason('blobs/sha256/abc')).toBeUndefined();
    expect(['/etc/x', 'a/../b', 'a//b', './a', 'a\\b', 'a\u0000b', 'C:x', ''].map((p) => unsafePathReason(p) !== undefined)).toEqual(Array(8).fill(true));
  });
});
