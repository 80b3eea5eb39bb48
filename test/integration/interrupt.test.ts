/**
 * Ctrl-C and SIGTERM in the middle of `bundle create` and `bundle import`: the run stops within
 * the README's 2 seconds, prints one line saying the same command continues, exits 130, and the
 * rerun completes. Ctrl-C goes through a real pseudo-terminal (`script` from util-linux) with the
 * progress spinner drawn, as an operator's terminal would send it: the line discipline turns the
 * byte 0x03 into SIGINT for the foreground process group.
 *
 * The registry sits behind a proxy that slows both directions, so the copy (create) and the upload
 * (import) are still running when the signal comes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { loadPublicKey } from '../../src/bundle/keys.js';
import { verifyBundle } from '../../src/ops/verify.js';
import { AIRLOCK_BIN, airlock } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry } from '../support/seed.js';
import { startSlowProxy, type SlowProxy } from '../support/slow-proxy.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';
import { shellQuote } from '../support/pty.js';

const MiB = 1024 * 1024;
/** While a run is to be interrupted the proxy passes 6 MiB/s: the 20 MiB copy takes ~3.5 s. */
const SLOW = 6 * MiB;
/**
 * The README promises an exit within 2 s of the signal. On this shared 2-core machine a process
 * can be descheduled for a few hundred ms, so the assertion allows 2 s plus 1 s of slack; the
 * measured times are printed.
 */
const STOP_BOUND_MS = 3000;
/** A run still alive this long after the signal (or after its start, before one) is killed. */
const HANG_MS = 20_000;

let tmp: TempDir;
let reg: TestRegistry;
let proxy: SlowProxy;
let ref: string;
let key: string;
let pub: string;
/** A complete bundle of `ref`, for the import tests. */
let bundle: string;

beforeAll(async () => {
  tmp = await makeTempDir('interrupt');
  const layer = (id: string, size: number) => ({ id, size, randomRatio: 1, files: 2 });
  const corpus = (await writeCorpus(`${tmp.path}/upstream`, {
    images: [{ name: 'example.com/stop/app:v1', layers: [layer('stop-a', 12 * MiB), layer('stop-b', 8 * MiB)] }],
  })) as { dir: string };
  reg = await startRegistry();
  await seedRegistry(reg, corpus.dir);
  proxy = await startSlowProxy(reg.host);
  ref = `${proxy.host}/stop/app:v1`;
  expect((await airlock(['key', 'generate', '--out', `${tmp.path}/signer`])).code).toBe(0);
  key = `${tmp.path}/signer.key`;
  pub = `${tmp.path}/signer.pub`;
  bundle = `${tmp.path}/full.tar.zst`;
  const made = await airlock(['bundle', 'create', ref, '-o', bundle, '--sign-key', key, '--plain-http', '-q']);
  expect(made.code, made.stderr).toBe(0);
});

afterAll(async () => {
  await proxy?.close();
  await reg?.stop();
  await tmp?.remove();
});

const createArgs = (out: string, ...extra: string[]): string[] => ['bundle', 'create', ref, '-o', out, '--sign-key', key, '--plain-http', ...extra];
const importArgs = (prefix: string, ...extra: string[]): string[] => [
  'bundle',
  'import',
  bundle,
  '--to',
  `${proxy.host}/${prefix}`,
  '--trust',
  pub,
  '--plain-http',
  ...extra,
];

interface Stopped {
  code: number | null;
  /** Everything the run wrote (through the terminal: stdout and stderr together). */
  output: string;
  /** Milliseconds from the signal to the exit. */
  stopMs: number;
}

/**
 * Run `airlock ARGS` and interrupt it once `ready()` holds: with `ctrl-c` inside a pseudo-terminal
 * (`script -qfec`, whose exit code is the command's), else by sending `signal` to the process.
 */
async function interrupt(args: string[], ready: () => boolean, how: 'ctrl-c' | NodeJS.Signals): Promise<Stopped> {
  proxy.rate = SLOW;
  const child: ChildProcess =
    how === 'ctrl-c'
      ? // A pty made by script for a piped stdin has 0 columns; give it a terminal's size.
        spawn('script', ['-qfec', `stty cols 120 rows 40; exec ${shellQuote([process.execPath, AIRLOCK_BIN, ...args])}`, '/dev/null'], {
          stdio: ['pipe', 'pipe', 'pipe'],
          detached: true,
          // Without CI (which CI sets): in a CI runner's terminal airlock draws no spinner, and
          // the spinner (ora, which could take the terminal's Ctrl-C) is what this case is about.
          env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'CI')),
        })
      : spawn(process.execPath, [AIRLOCK_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  let sentAt = 0;
  const exited = new Promise<number>((resolve) =>
    child.on('exit', (code) => {
      resolve(code ?? -1);
    }),
  );
  const started = performance.now();
  const timer = setInterval(() => {
    // A run that ignores the signal fails the test instead of hanging it.
    if (performance.now() - (sentAt || started) > HANG_MS) killAll(child, how);
    if (sentAt !== 0 || !ready()) return;
    sentAt = performance.now();
    if (how === 'ctrl-c') child.stdin?.write('\u0003');
    else child.kill(how);
  }, 5);
  try {
    const code = await exited;
    const stopMs = sentAt === 0 ? Number.NaN : performance.now() - sentAt;
    // What an operator would read: spinner frames and colours removed, the end of it only.
    const text = output.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '\n');
    return { code, output: text.slice(-4000), stopMs };
  } finally {
    clearInterval(timer);
    child.stdin?.end();
    proxy.rate = Infinity;
  }
}

/** Kill a run that hangs, with everything it started (script's child is in script's process group). */
function killAll(child: ChildProcess, how: string): void {
  try {
    if (how === 'ctrl-c' && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    else child.kill('SIGKILL');
  } catch {
    // already gone
  }
}

/** Which way the run ended: its own error (the signal reached the loop) or the forced exit after the grace. */
const path = (r: Stopped): string => (r.output.includes('airlock: interrupted; ') ? 'forced exit after the grace' : 'stopped by itself');

const partialAt = (partial: string, bytes: number) => (): boolean => existsSync(partial) && statSync(partial).size >= bytes;

describe('Ctrl-C and SIGTERM during bundle create', () => {
  it.each([['ctrl-c' as const], ['SIGTERM' as const]])('%s: exit 130 within 2 s, one line, OUT.partial kept; the rerun completes', async (how) => {
    const out = `${tmp.path}/create-${how}.tar.zst`;
    const partial = `${out}.partial`;
    const first = await interrupt(createArgs(out), partialAt(partial, 4 * MiB), how);
    console.log(`create, ${how}: stopped ${first.stopMs.toFixed(0)} ms after the signal (${path(first)})`);
    expect(first.code, first.output).toBe(130);
    expect(first.stopMs).toBeLessThan(STOP_BOUND_MS);
    expect(first.output).toMatch(/airlock: .*interrupted.*; run the same command again to continue from /);
    expect(first.output).toContain(partial);
    expect(first.output.match(/interrupted/g)?.length).toBe(1);
    expect(existsSync(partial)).toBe(true);
    expect(existsSync(out)).toBe(false);

    const rerun = await airlock(createArgs(out));
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stderr).toMatch(/continuing .*\.partial/);
    expect(existsSync(partial)).toBe(false);
    const verified = await airlock(['bundle', 'verify', out, '--trust', pub]);
    expect(verified.code, verified.stderr).toBe(0);
  });
});

describe('Ctrl-C and SIGTERM during bundle import', () => {
  it.each([['ctrl-c' as const], ['SIGTERM' as const]])('%s: exit 130 within 2 s, one line; the rerun completes', async (how) => {
    const prefix = `imported-${how.toLowerCase()}`;
    proxy.received = 0;
    const first = await interrupt(importArgs(prefix), () => proxy.received >= 4 * MiB, how);
    console.log(`import, ${how}: stopped ${first.stopMs.toFixed(0)} ms after the signal (${path(first)})`);
    expect(first.code, first.output).toBe(130);
    expect(first.stopMs).toBeLessThan(STOP_BOUND_MS);
    expect(first.output).toMatch(/airlock: .*interrupted; .*run the same command again/);
    expect(first.output.match(/interrupted/g)?.length).toBe(1);

    const rerun = await airlock(importArgs(prefix, '--json'));
    expect(rerun.code, rerun.stderr).toBe(0);
    const result = JSON.parse(rerun.stdout) as { images: Array<{ reference: string; tagged: boolean }> };
    expect(result.images.map((i) => i.tagged)).toEqual([true]);
    // The imported image is complete: a bundle can be made from it and verifies.
    const back = `${tmp.path}/back-${how}.tar.zst`;
    const made = await airlock(['bundle', 'create', result.images[0]!.reference, '-o', back, '--unsigned', '--plain-http', '-q']);
    expect(made.code, made.stderr).toBe(0);
  });
});

describe('an interrupted verify', () => {
  it('stops reading when its signal aborts mid-pass (not going on entry by entry through the index)', async () => {
    const controller = new AbortController();
    let read = 0;
    let afterAbort = 0;
    const verifying = verifyBundle({
      path: bundle,
      trusted: [await loadPublicKey(pub)],
      signal: controller.signal,
      onProgress: (e) => {
        if (e.kind !== 'bytes') return;
        if (controller.signal.aborted) afterAbort += e.bytes;
        else if ((read += e.bytes) >= 2 * MiB) controller.abort();
      },
    });
    await expect(verifying).rejects.toMatchObject({ name: 'AbortError' });
    // What was already decompressed may still be hashed; the other ~18 MiB are not read.
    expect(afterAbort).toBeLessThan(8 * MiB);
  });
});

/**
 * The bound does not rest on every await honouring the AbortSignal: a process whose run ignores it
 * is ended STOP_GRACE_MS after the signal, with the same one line; a second signal ends it at once.
 */
describe('a run that does not stop by itself', () => {
  const STUCK = (graceMs?: number) => `
    import { watchSignals } from ${JSON.stringify(new URL('../../dist/cli/interrupt.js', import.meta.url).href)};
    const w = watchSignals(${graceMs === undefined ? '' : `{ graceMs: ${graceMs} }`});
    w.setHint('run it again');
    setInterval(() => undefined, 1000); // busy with something that ignores w.signal
    process.stdout.write('ready\\n');
  `;

  async function stuck(graceMs: number | undefined, signals: Array<{ afterMs: number; signal: NodeJS.Signals }>) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', STUCK(graceMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const first = performance.now();
    for (const s of signals) {
      await new Promise((r) => setTimeout(r, s.afterMs));
      child.kill(s.signal);
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), HANG_MS);
    const code = await exited;
    clearTimeout(timer);
    return { code, stderr, ms: performance.now() - first };
  }

  it('one SIGINT: exit 130 with the line after the 1.5 s grace', async () => {
    const r = await stuck(undefined, [{ afterMs: 0, signal: 'SIGINT' }]);
    console.log(`stuck run, one SIGINT: exited ${r.ms.toFixed(0)} ms after it`);
    expect(r.code).toBe(130);
    expect(r.stderr).toBe('airlock: interrupted; run it again\n');
    expect(r.ms).toBeGreaterThanOrEqual(1400);
    expect(r.ms).toBeLessThan(STOP_BOUND_MS);
  });

  it('SIGTERM then a second signal: exit 130 at once, long before the grace ends', async () => {
    const r = await stuck(30_000, [
      { afterMs: 0, signal: 'SIGTERM' },
      { afterMs: 200, signal: 'SIGINT' },
    ]);
    console.log(`stuck run, second signal: exited ${r.ms.toFixed(0)} ms after the first`);
    expect(r.code).toBe(130);
    expect(r.stderr).toBe('airlock: interrupted; run it again\n');
    expect(r.ms).toBeLessThan(10_000);
  });
});
