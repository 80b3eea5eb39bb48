// @ts-check
/**
 * Temporary directories for tests, removed by `remove()` and, as a last resort, when the process
 * exits (so a failed test leaves nothing in /tmp).
 *
 * Plain JavaScript with JSDoc types (checked by `npm run typecheck`), like `registry.js` and
 * `seed.js`, so that the benchmark (`node bench/run.mjs`, unbuilt) imports the same code.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A directory that exists until `remove()` (or process exit).
 * @typedef {object} TempDir
 * @property {string} path
 * @property {() => Promise<void>} remove
 */

/** @type {Set<string>} */
const live = new Set();
let hooked = false;

/**
 * Create `$TMPDIR/airlock-<prefix>-XXXXXX`.
 * @example
 *   const dir = await makeTempDir('layout');
 *   try { ... } finally { await dir.remove(); }
 * @param {string} prefix
 * @returns {Promise<TempDir>}
 */
export async function makeTempDir(prefix) {
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const path of live) rmSync(path, { recursive: true, force: true });
    });
  }
  const path = await mkdtemp(join(tmpdir(), `airlock-${prefix}-`));
  live.add(path);
  return {
    path,
    async remove() {
      live.delete(path);
      await rm(path, { recursive: true, force: true });
    },
  };
}
