/**
 * The whole-file sha256 for the `.sha256` sidecar, computed on a worker thread that trails the
 * writer: the writer says how far the file is written, the worker reads that far back (from the
 * page cache) and hashes it. This moves one full sha256 pass per bundle (~0.65 s per GB here) off
 * the main thread, which is busy verifying and framing blobs, onto the second core.
 *
 * The worker hashes the file from byte 0, so a writer that continues an existing file (resume)
 * needs nothing from the run that wrote the first part.
 */
import { Worker } from 'node:worker_threads';
import { AirlockError } from '../errors.js';

/** Bytes the worker reads per call: 4 MiB, matching the writer's buffers. */
const READ_SIZE = 4 << 20;

/**
 * The worker reads the file (or, with a part size, the parts `PATH.part-001`, … as one file) up to
 * where the writer says it is written, hashing the whole and, for a split set, each part.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const partSize = workerData.partSize;
const hash = createHash('sha256');
const buf = Buffer.allocUnsafe(${READ_SIZE});
const parts = [];
let partHash = partSize ? createHash('sha256') : undefined;
let fd;
let fdPart = -1;
let done = 0;
function partPath(i) {
  return workerData.path + '.part-' + String(i + 1).padStart(3, '0');
}
function fdFor(i) {
  if (fdPart !== i) {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
    fd = openSync(partSize ? partPath(i) : workerData.path, 'r');
    fdPart = i;
  }
  return fd;
}
function upTo(target) {
  while (done < target) {
    const i = partSize ? Math.floor(done / partSize) : 0;
    const within = partSize ? done - i * partSize : done;
    const room = partSize ? partSize - within : Infinity;
    const n = readSync(fdFor(i), buf, 0, Math.min(buf.length, target - done, room), within);
    if (n === 0) throw new Error('the file ended at ' + done + ' bytes, expected ' + target);
    hash.update(buf.subarray(0, n));
    if (partHash) partHash.update(buf.subarray(0, n));
    done += n;
    if (partHash && done % partSize === 0) endPart(i);
  }
}
function endPart(i) {
  parts.push({ path: partPath(i), size: done - i * partSize, sha256: partHash.digest('hex') });
  partHash = createHash('sha256');
}
parentPort.on('message', (m) => {
  try {
    upTo(m.upTo);
    if (m.final) {
      if (partHash && done % partSize !== 0) endPart(Math.floor(done / partSize));
      if (fd !== undefined) closeSync(fd);
      parentPort.postMessage({ hex: hash.digest('hex'), parts: partSize ? parts : undefined });
    }
  } catch (err) {
    parentPort.postMessage({ error: String((err && err.message) || err) });
  }
});
`;

/** One part of a split set as written: its path (as written, before the rename), size and sha256 (hex). */
export interface HashedPart {
  path: string;
  size: number;
  sha256: string;
}

export class TrailingHasher {
  readonly #path: string;
  readonly #worker: Worker;
  readonly #result: Promise<{ sha256: string; parts?: HashedPart[] }>;

  /**
   * Start hashing `path`, which must exist (it may still be empty); with `partSize`, the split set
   * `path.part-001`, … (parts are opened as the hasher gets to them).
   */
  constructor(path: string, partSize?: number) {
    this.#path = path;
    // execArgv: [] so a parent started with --input-type=module does not make this CommonJS source ESM.
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { path, partSize: partSize ?? 0 } });
    this.#result = new Promise((resolve, reject) => {
      this.#worker.on('message', (m: { hex?: string; parts?: HashedPart[]; error?: string }) => {
        if (m.hex !== undefined) resolve({ sha256: m.hex, ...(m.parts === undefined ? {} : { parts: m.parts }) });
        else reject(new AirlockError('IO', `${path}: could not read back for its checksum: ${m.error ?? 'unknown error'}`, { subject: path }));
      });
      this.#worker.once('error', reject);
    });
    this.#result.catch(() => undefined);
  }

  /** The first `bytes` bytes of the file are written and final: hash them when convenient. */
  advance(bytes: number): void {
    this.#worker.postMessage({ upTo: bytes });
  }

  /** The file is complete at `bytes` bytes: resolves to its sha256 (hex), and each part's for a split set. */
  async finish(bytes: number): Promise<{ sha256: string; parts?: HashedPart[] }> {
    this.#worker.postMessage({ upTo: bytes, final: true });
    try {
      return await this.#result;
    } finally {
      await this.#worker.terminate();
    }
  }

  /** Stop without a result. */
  async abort(): Promise<void> {
    await this.#worker.terminate();
  }

  get path(): string {
    return this.#path;
  }
}
