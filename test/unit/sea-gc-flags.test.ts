/**
 * The single executable sets V8's GC flags at run time (src/sea/gc-flags.ts), where a wrong one does
 * not fail politely: `--single-threaded-gc` or `--no-parallel-marking` set after start abort the
 * process at its first full collection. Each flag of the list, set the same way, must survive an
 * allocation load that forces full collections under external-memory pressure.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { GC_FLAGS } from '../../src/sea/gc-flags.js';

const run = promisify(execFile);

/** Sets the flags, then allocates ~1.5 GB of buffers and small objects; prints the full collections. */
const LOAD = `
for (const flag of JSON.parse(process.argv[1])) require('node:v8').setFlagsFromString(flag);
const { PerformanceObserver, constants } = require('node:perf_hooks');
let full = 0;
new PerformanceObserver((list) => { for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) full++; }).observe({ entryTypes: ['gc'] });
let keep = [];
const old = [];
for (let i = 0; i < 1500; i++) {
  keep.push(Buffer.alloc(1 << 20));
  if (keep.length > 50) keep = [];
  for (let j = 0; j < 300; j++) old.push({ j, list: [j] });
  if (old.length > 300000) old.length = 0;
}
setTimeout(() => console.log(full), 50);
`;

describe('the single executable GC flags', () => {
  it('are set at run time without aborting V8 through full collections', async () => {
    const { stdout } = await run(process.execPath, ['-e', LOAD, JSON.stringify(GC_FLAGS)], { timeout: 60_000 });
    expect(Number(stdout.trim())).toBeGreaterThan(0);
  });
});
