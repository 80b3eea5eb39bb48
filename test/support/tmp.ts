/**
 * Temporary directories for tests, removed by `remove()` and, as a last resort, when the process
 * exits (so a failed test leaves nothing in /tmp).
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A directory that exists until `remove()` (or process exit). */
export interface TempDir {
  path: string;
  remove(): Promise<void>;
}

const live = new Set<string>();
let hooked = false;

/**
 * Create `$TMPDIR/airlock-<prefix>-XXXXXX`.
 * @example
 *   const dir = await makeTempDir('layout');
 *   try { ... } finally { await dir.remove(); }
 */
export async function makeTempDir(prefix: string): Promise<TempDir> {
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
