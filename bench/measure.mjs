/**
 * Measuring one command: wall time (monotonic clock around the process), peak RSS, user and system
 * CPU from GNU `/usr/bin/time -v`, and the peak disk use of named directories/files (sampled while it
 * runs and once after it exits). Plus the A/B alternation of a pair and the statistics over rounds.
 *
 * Peak RSS is `time -v`'s "Maximum resident set size": Linux's ru_maxrss of the child, which for a
 * script is the largest single process among it and its descendants (not the sum of processes that
 * ran at the same time, e.g. `tar | zstd`).
 */
import { spawn } from 'node:child_process';
import { lstat, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Disk is sampled this often while a command runs: often enough to catch a staging directory. */
const DISK_SAMPLE_MS = 250;
/** Keep the end of a command's output for the error message. */
const OUTPUT_CAP = 8 * 1024;
const MiB = 1024 * 1024;

/** A measured command that exited non-zero (or could not start). */
export class CommandFailed extends Error {
  /** @param {string} label @param {string[]} argv @param {number | null} code @param {string} output */
  constructor(label, argv, code, output) {
    super(`${label}: \`${argv.join(' ').slice(0, 300)}\` exited with ${code}\n${output.trim().split('\n').slice(-25).join('\n')}`);
    this.name = 'CommandFailed';
    this.code = code;
  }
}

/**
 * @typedef {object} Sample
 * @property {number} seconds Wall time.
 * @property {number} rssMiB Peak RSS (largest single process).
 * @property {number} userS
 * @property {number} sysS
 * @property {number} diskMiB Peak size of the watched paths.
 */

/**
 * Run `argv` under `/usr/bin/time -v`, fail with {@link CommandFailed} on a non-zero exit.
 * @example
 *   const s = await runTimed('create', ['node', 'bin/airlock', 'bundle', 'create', ...], { disk: [out, tmp] });
 * @param {string} label
 * @param {string[]} argv
 * @param {{ cwd?: string, env?: Record<string, string>, disk?: string[], timeFile: string }} opts
 * @returns {Promise<Sample>}
 */
export async function runTimed(label, argv, opts) {
  const disk = opts.disk ?? [];
  let peak = 0;
  let sampling = Promise.resolve();
  const timer = setInterval(() => {
    sampling = sampling.then(async () => {
      peak = Math.max(peak, await sizeOf(disk));
    });
  }, DISK_SAMPLE_MS);
  const started = process.hrtime.bigint();
  let result;
  try {
    result = await spawnCollect(['/usr/bin/time', '-v', '-o', opts.timeFile, ...argv], opts);
  } finally {
    clearInterval(timer);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await sampling;
  peak = Math.max(peak, await sizeOf(disk));
  const report = await readFile(opts.timeFile, 'utf8').catch(() => '');
  await rm(opts.timeFile, { force: true });
  if (result.code !== 0) throw new CommandFailed(label, argv, result.code, result.output);
  const field = (/** @type {string} */ name) => {
    const m = new RegExp(`^\\s*${name}: ([0-9.]+)$`, 'm').exec(report);
    if (!m) throw new Error(`${label}: /usr/bin/time -v printed no "${name}":\n${report}`);
    return Number(m[1]);
  };
  return {
    seconds,
    rssMiB: field('Maximum resident set size \\(kbytes\\)') / 1024,
    userS: field('User time \\(seconds\\)'),
    sysS: field('System time \\(seconds\\)'),
    diskMiB: peak / MiB,
  };
}

/**
 * Run a command to completion, collecting the end of its output (not measured).
 * @param {string[]} argv
 * @param {{ cwd?: string, env?: Record<string, string> }} [opts]
 * @returns {Promise<{ code: number | null, output: string }>}
 */
export function spawnCollect(argv, opts = {}) {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (/** @type {Buffer} */ chunk) => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_CAP);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', (err) => resolve({ code: null, output: `${output}\nspawn failed: ${err.message}` }));
    child.once('close', (code) => resolve({ code, output }));
  });
}

/**
 * Bytes in files under `paths` (files or directories; missing ones count 0). Blocks actually
 * allocated, like `du`, so sparse files and half-written files count what they hold.
 * @param {string[]} paths
 */
export async function sizeOf(paths) {
  let total = 0;
  for (const p of paths) total += await walk(p);
  return total;
}

/** @param {string} path @returns {Promise<number>} */
async function walk(path) {
  let st;
  try {
    st = await lstat(path);
  } catch {
    return 0; // vanished while we looked
  }
  if (!st.isDirectory()) return st.blocks * 512;
  let entries = [];
  try {
    entries = await readdir(path);
  } catch {
    return 0;
  }
  let total = st.blocks * 512;
  for (const e of entries) total += await walk(join(path, e));
  return total;
}

/**
 * @typedef {object} Side One side (airlock or baseline) of a pair.
 * @property {(round: number) => Promise<void>} [prepare] Unmeasured set-up before each run.
 * @property {(round: number) => Promise<Sample>} run The measured run.
 * @property {(round: number) => Promise<void>} [cleanup] Unmeasured clean-up after each run.
 * @typedef {{ samples: Sample[], error?: string, skipped?: string }} SideResult
 */

/**
 * Run the pair alternately (A B A B …) for `rounds` rounds. A side that fails is recorded and left
 * out of the remaining rounds; the other side goes on so that its numbers are still reported.
 * @param {string} step
 * @param {number} rounds
 * @param {{ airlock: Side & { skip?: string }, baseline: Side }} pair
 * @param {(msg: string) => void} log
 * @returns {Promise<{ airlock: SideResult, baseline: SideResult }>}
 */
export async function alternate(step, rounds, pair, log) {
  /** @type {{ airlock: SideResult, baseline: SideResult }} */
  const out = { airlock: { samples: [] }, baseline: { samples: [] } };
  if (pair.airlock.skip) out.airlock.skipped = pair.airlock.skip;
  for (let round = 1; round <= rounds; round++) {
    for (const name of /** @type {const} */ (['airlock', 'baseline'])) {
      const side = pair[name];
      const result = out[name];
      if (result.error || result.skipped) continue;
      try {
        await side.prepare?.(round);
        const s = await side.run(round);
        result.samples.push(s);
        log(`${step} round ${round} ${name}: ${s.seconds.toFixed(2)} s, ${s.rssMiB.toFixed(0)} MiB RSS, ${s.diskMiB.toFixed(1)} MiB disk`);
      } catch (err) {
        result.error = /** @type {Error} */ (err).message;
        log(`${step} round ${round} ${name}: FAILED\n${result.error}`);
      } finally {
        await side.cleanup?.(round);
      }
    }
  }
  return out;
}

/**
 * Median, min and max of each measure over the rounds.
 * @param {Sample[]} samples
 */
export function stats(samples) {
  if (samples.length === 0) return undefined;
  /** @param {keyof Sample} key */
  const of = (key) => {
    const v = samples.map((s) => s[key]).sort((a, b) => a - b);
    const mid = v.length >> 1;
    const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
    return { median, min: v[0], max: v[v.length - 1] };
  };
  return { rounds: samples.length, seconds: of('seconds'), rssMiB: of('rssMiB'), userS: of('userS'), sysS: of('sysS'), diskMiB: of('diskMiB') };
}
