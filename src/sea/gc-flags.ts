/**
 * The single executable's stand-in for bin/airlock's `--single-threaded-gc` (see its comment): a
 * SEA takes no Node or V8 options on its command line, and NODE_OPTIONS refuses this one.
 *
 * Setting `--single-threaded-gc` itself once V8 runs aborts the process at the first full
 * collection (Node 20.20: a cppgc check on its concurrent marker fails; `--no-parallel-marking`
 * does the same, so it stays out). The flags it implies that V8 reads when a collection starts can
 * be set, before the first one. Measured on Node 20.20 (test/unit/sea-gc-flags.test.ts keeps them
 * from aborting):
 * - an allocation loop of 1 MiB buffers: full collections ~45 without flags, ~27 with the flag and
 *   with these; CPU of the threads besides the main one ~0.9 s, ~0.01 s with the flag, ~0.05 s
 *   with these;
 * - `bundle create` of one 454 MiB image from a registry (`--trace-gc`, bin/airlock's code started
 *   through this function): 2-5 full collections without flags, 1 with the flag, 1 with these, the
 *   same scavenges; total CPU within the noise of a shared machine.
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
