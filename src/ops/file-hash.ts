/**
 * sha256 of a whole file on a worker thread, so checking the `.sha256` sidecar runs on the second
 * core while the main thread decompresses and hashes entries.
 */
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const hash = createHash('sha256');
const buf = Buffer.allocUnsafe(4 << 20);
let fd;
try {
  fd = openSync(workerData.path, 'r');
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

/** Resolves to the lower-case hex sha256 of the file at `path`. */
export function hashFileInWorker(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { path } });
    worker.once('message', (m: { hex?: string; error?: string }) => {
      if (m.hex !== undefined) resolve(m.hex);
      else reject(new Error(m.error ?? 'hash worker failed'));
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}
