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

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const hash = createHash('sha256');
const buf = Buffer.allocUnsafe(${READ_SIZE});
const fd = openSync(workerData.path, 'r');
let done = 0;
function upTo(target) {
  while (done < target) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, target - done), done);
    if (n === 0) throw new Error('the file ended at ' + done + ' bytes, expected ' + target);
    hash.update(buf.subarray(0, n));
    done += n;
  }
}
parentPort.on('message', (m) => {
  try {
    upTo(m.upTo);
    if (m.final) {
      closeSync(fd);
      parentPort.postMessage({ hex: hash.digest('hex') });
    }
  } catch (err) {
    parentPort.postMessage({ error: String((err && err.message) || err) });
  }
});
`;

export class TrailingHasher {
  readonly #path: string;
  readonly #worker: Worker;
  readonly #result: Promise<string>;

  /** Start hashing `path`, which must exist (it may still be empty). */
  constructor(path: string) {
    this.#path = path;
    // execArgv: [] so a parent started with --input-type=module does not make this CommonJS source ESM.
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { path } });
    this.#result = new Promise<string>((resolve, reject) => {
      this.#worker.on('message', (m: { hex?: string; error?: string }) => {
        if (m.hex !== undefined) resolve(m.hex);
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

  /** The file is complete at `bytes` bytes: resolves to its sha256 (hex). */
  async finish(bytes: number): Promise<string> {
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
