/**
 * The cheap pre-check of every entry (frame-check.ts) accepts what the writer writes: in particular
 * a compressed entry whose first block compresses poorly, so that the tar header only comes out of
 * libzstd once the whole first block (up to 128 KiB) is read. Such an entry once made `bundle import`
 * refuse a bundle that `bundle verify` passed ("its tar header cannot be decoded").
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import { ArchiveWriter } from '../../src/bundle/archive-writer.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('frame-check');
});
afterAll(async () => {
  await tmp?.remove();
});

/** `size` bytes of which a share `random` is random and the rest zeros, in 4 KiB stripes. */
function mixed(size: number, random: number): Buffer {
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; at += 4096) if ((at / 4096) % 10 < random * 10) randomBytes(Math.min(4096, size - at)).copy(out, at);
  return out;
}

describe('checkFrames', () => {
  it.each([
    ['incompressible', 1],
    ['70 % random', 0.7],
    ['30 % random', 0.3],
    ['zeros', 0],
  ])('accepts a compressed entry whose content is %s', async (_name, random) => {
    const path = join(tmp.path, `b-${random}.tar.zst`);
    const writer = await ArchiveWriter.create(path, { mtime: new Date(0), level: 1 });
    const data = mixed(3 << 20, random);
    await writer.addBuffer('blobs/sha256/' + 'a'.repeat(64), data, { compress: true });
    await writer.finish();
    const reader = await ArchiveReader.open(path);
    try {
      await expect(reader.checkFrames()).resolves.toBeUndefined();
    } finally {
      await reader.close();
    }
  });
});
