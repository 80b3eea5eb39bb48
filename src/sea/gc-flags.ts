/**
 * The single executable's stand-in for bin/airlock's `--single-threaded-gc` (see its comment): a
 * SEA takes no Node or V8 options on its command line, and NODE_OPTIONS refuses this one.
 *
 * Setting `--single-threaded-gc` itself once V8 runs aborts the process at the first full
 * collection (Node 20.20: a cppgc check on its concurrent marker; so does `--no-parallel-marking`).
 * The flags it implies that V8 reads when a collection starts can be set, before the first one:
 * concurrent marking off is what brings the full collections answering external-memory pressure
 * down (~45 to ~27 in the allocation test below, as with `--single-threaded-gc`), and the parallel
 * scavenger, concurrent sweeping and the parallel compaction phases off keep the rest of the work on
 * the main thread (helper threads: ~0.9 s of CPU without the flags, ~0.05 s with them, ~0.01 s with
 * `--single-threaded-gc`).
 */
import { setFlagsFromString } from 'node:v8';

export const GC_FLAGS = [
  '--no-concurrent-marking',
  '--no-parallel-scavenge',
  '--no-concurrent-sweeping',
  '--no-parallel-compaction',
  '--no-parallel-pointer-update',
  '--no-concurrent-array-buffer-sweeping',
] as const;

/** Run first, before anything allocates much. */
export function setGcFlags(): void {
  for (const flag of GC_FLAGS) setFlagsFromString(flag);
}
