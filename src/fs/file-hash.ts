/**
 * sha256 of a whole file on a worker thread, so checking the `.sha256` sidecar runs on the second
 * core while the main thread decompresses and hashes entries.
 */
import { Worker } from 'node:worker_threads';
import { AirlockError } from '../errors.js';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync, fstatSync, constants } = require('node:fs');
const hash = createHash('sha256');
const buf = Buffer.allocUnsafe(4 << 20);
let fd;
try {
  // O_NONBLOCK: a FIFO put in the file's place opens at once instead of blocking this thread in
  // the kernel, where terminate() cannot reach it; then only a regular file is read (a device may
  // never end).
  fd = openSync(workerData.path, constants.O_RDONLY | constants.O_NONBLOCK);
  if (!fstatSync(fd).isFile()) throw new Error(workerData.path + ' is not a regular file');
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    hash.update(buf.subarray(0, n));
  }
  parentPort.postMessage({ hex: hash.digest('hex') });
} catch (err) {
  parentPort.postMessage({ error: String(err && err.message || err) });
} finally {
  if (fd !== undefined) closeSync(fd);
}
`;

/**
 * Resolves to the lower-case hex sha256 of the regular file at `path`. When `signal` aborts, the
 * worker is terminated (between two 4 MiB reads) and the promise rejects: a verify that fails early
 * or is interrupted does not wait for the hash of a large file.
 */
export function hashFileInWorker(path: string, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(new AirlockError('INTERRUPTED', 'interrupted', { cause: signal.reason }));
      return;
    }
    const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { path } });
    const onAbort = (): void => {
      reject(new AirlockError('INTERRUPTED', 'interrupted', { cause: signal?.reason }));
      void worker.terminate();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (m: { hex?: string; error?: string }) => {
      signal?.removeEventListener('abort', onAbort);
      if (m.hex !== undefined) resolve(m.hex);
      else reject(new Error(m.error ?? 'hash worker failed'));
      void worker.terminate();
    });
    worker.once('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
  });
}
