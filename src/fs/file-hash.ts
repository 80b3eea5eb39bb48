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
 * Run `source` (CommonJS, evaluated) on a worker thread with `workerData`; resolves to the one
 * message it posts. When `signal` aborts, the worker is terminated (between two reads) and the
 * promise rejects INTERRUPTED: a run that fails early or is interrupted does not wait for it.
 */
export function runWorker<M>(source: string, workerData: unknown, signal?: AbortSignal): Promise<M> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(new AirlockError('INTERRUPTED', 'interrupted', { cause: signal.reason }));
      return;
    }
    const worker = new Worker(source, { eval: true, execArgv: [], workerData });
    const onAbort = (): void => {
      reject(new AirlockError('INTERRUPTED', 'interrupted', { cause: signal?.reason }));
      void worker.terminate();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (m: M) => {
      signal?.removeEventListener('abort', onAbort);
      resolve(m);
      void worker.terminate();
    });
    worker.once('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
  });
}

/** Resolves to the lower-case hex sha256 of the regular file at `path` (see {@link runWorker} for `signal`). */
export async function hashFileInWorker(path: string, signal?: AbortSignal): Promise<string> {
  const m = await runWorker<{ hex?: string; error?: string }>(WORKER_SOURCE, { path }, signal);
  if (m.hex === undefined) throw new Error(m.error ?? 'hash worker failed');
  return m.hex;
}
