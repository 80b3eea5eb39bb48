/**
 * Deterministic layer blobs for the sample corpus (see `corpus.mjs`).
 *
 * A layer is a real tar archive written here byte by byte: ustar headers with root ownership and a
 * fixed mtime, a README, and `data-N.bin` files whose content is part AES-256-CTR keystream (a seeded
 * PRNG keyed by sha256(seed, layer id, file index): incompressible, and fast enough for 200 MiB
 * layers) and part repeated text (compressible). The tar is streamed in 1 MiB chunks through
 * sha256 (the diff_id), gzip at a fixed level, sha256 again (the blob digest) into a temp file, which
 * is then renamed to `blobs/sha256/<hex>`: nothing is ever held in memory whole.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

/** gzip level 1: the corpus only needs valid gzip, and benchmarks generate hundreds of MiB. */
const GZIP_LEVEL = 1;
/** Half of the layer content is incompressible, half is text: roughly what real layers hold. */
const DEFAULT_RANDOM_RATIO = 0.5;
/** Files per layer unless the spec says otherwise. */
const DEFAULT_FILES = 3;
/** Generation chunk: large enough for fast hashing (FACTS: 1 MiB reads), small enough for memory. */
const CHUNK = 1024 * 1024;
/** Fixed mtime of every tar entry: 2020-01-01T00:00:00Z. */
export const EPOCH = 1577836800;

/**
 * @typedef {object} LayerSpec
 * @property {string} id Content seed; the same id always yields the same blob (shared layers).
 *   Characters `[a-zA-Z0-9._-]`, at most 60.
 * @property {number} size Bytes of file content in the tar, before compression.
 * @property {boolean} [uncompressed] Store a plain tar instead of tar+gzip.
 * @property {number} [randomRatio] Incompressible share of the content, 0..1 (default 0.5).
 * @property {number} [files] Files the content is split over (default 3).
 * @typedef {{ digest: string, size: number, diffId: string }} LayerBlob
 */

/**
 * Stream one layer into `blobsDir` through `tmpFile` (created exclusively, renamed when done; the
 * caller removes it on failure).
 * @param {string} blobsDir `LAYOUT/blobs/sha256`
 * @param {string} tmpFile a path on the same file system
 * @param {string} seed
 * @param {LayerSpec} layer
 * @returns {Promise<LayerBlob>}
 */
export async function writeLayerBlob(blobsDir, tmpFile, seed, layer) {
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  let size = 0;
  const tapDiff = new Transform({
    transform(chunk, _enc, cb) {
      diff.update(chunk);
      cb(null, chunk);
    },
  });
  const tapBlob = new Transform({
    transform(chunk, _enc, cb) {
      blob.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  const source = Readable.from(layerTar(seed, layer), { objectMode: false });
  const file = createWriteStream(tmpFile, { flags: 'wx' });
  if (layer.uncompressed) await pipeline(source, tapDiff, tapBlob, file);
  else await pipeline(source, tapDiff, createGzip({ level: GZIP_LEVEL }), tapBlob, file);
  const hex = blob.digest('hex');
  await rename(tmpFile, join(blobsDir, hex));
  return { digest: `sha256:${hex}`, size, diffId: `sha256:${diff.digest('hex')}` };
}

/**
 * The uncompressed tar of a layer: `airlock/<id>/README` plus `data-N.bin` files, in chunks.
 * @param {string} seed @param {LayerSpec} l @returns {AsyncGenerator<Buffer>}
 */
async function* layerTar(seed, l) {
  if (!/^[a-zA-Z0-9._-]{1,60}$/.test(l.id)) throw new Error(`layer id ${JSON.stringify(l.id)}: use [a-zA-Z0-9._-], at most 60`);
  const files = Math.max(1, l.files ?? DEFAULT_FILES);
  const ratio = Math.min(1, Math.max(0, l.randomRatio ?? DEFAULT_RANDOM_RATIO));
  yield tarHeader('airlock/', 0, '5', 0o755);
  yield tarHeader(`airlock/${l.id}/`, 0, '5', 0o755);
  const readme = Buffer.from(`airlock corpus layer ${l.id} (seed ${seed})\n`);
  yield tarHeader(`airlock/${l.id}/README`, readme.length, '0', 0o644);
  yield padded(readme);
  const line = `${l.id}: the quick brown fox jumps over the lazy dog 0123456789\n`;
  const text = Buffer.from(line.repeat(Math.ceil(CHUNK / line.length)));
  const zeros = Buffer.alloc(CHUNK);
  for (let f = 0; f < files; f++) {
    const size = f === files - 1 ? l.size - Math.floor(l.size / files) * (files - 1) : Math.floor(l.size / files);
    yield tarHeader(`airlock/${l.id}/data-${f}.bin`, size, '0', 0o644);
    const key = createHash('sha256').update(`${seed}\0${l.id}\0${f}`).digest();
    const prng = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
    for (let done = 0; done < size; ) {
      const n = Math.min(CHUNK, size - done);
      const random = Math.floor(n * ratio);
      yield Buffer.concat([prng.update(zeros.subarray(0, random)), text.subarray(0, n - random)]);
      done += n;
    }
    if (size % 512) yield Buffer.alloc(512 - (size % 512));
  }
  yield Buffer.alloc(1024);
}

/** @param {Buffer} b */
function padded(b) {
  return b.length % 512 ? Buffer.concat([b, Buffer.alloc(512 - (b.length % 512))]) : b;
}

/** A ustar header with root ownership and the fixed mtime. @param {string} name @param {number} size @param {string} type @param {number} mode */
function tarHeader(name, size, type, mode) {
  const h = Buffer.alloc(512);
  /** @type {(off: number, len: number, n: number) => void} */
  const octal = (off, len, n) => void h.write(`${n.toString(8).padStart(len - 1, '0')}\0`, off, len, 'latin1');
  h.write(name, 0, 100, 'utf8');
  octal(100, 8, mode);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, EPOCH);
  h.fill(0x20, 148, 156);
  h.write(type, 156, 1, 'latin1');
  h.write('ustar\u000000', 257, 8, 'latin1');
  h.write('root', 265, 32, 'latin1');
  h.write('root', 297, 32, 'latin1');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return h;
}
