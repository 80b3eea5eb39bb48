/**
 * What `bundle create` writes while it runs, where operators watch it: a real pseudo-terminal of
 * 0×0 (`script`, some CI runners, `kubectl exec -t`) and of 40×120, a pipe, and a JSON log. The
 * copy runs behind a proxy that slows it to a few seconds, so progress has something to draw.
 *
 * - 0×0: plain lines only (no escape sequence at all), a progress line per interval, a line per
 *   completed image; the output stays small (it once flooded 11.5 MB in 6 s).
 * - 40×120: the spinner, with the image in flight, never wider than the terminal; small too.
 * - A pipe with --log-format json: every line a JSON object, `progress` entries at the interval.
 * The bound is the issue's: under 200 KB for a one-minute run, scaled to the run's length.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { airlock } from '../support/cli.js';
import { airlockInPty } from '../support/pty.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry } from '../support/seed.js';
import { startSlowProxy, type SlowProxy } from '../support/slow-proxy.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const MiB = 1024 * 1024;
/** 12 MiB of layers at 4 MiB/s: about 3 s of copying each run. */
const RATE = 4 * MiB;
/**
 * Progress lines every half second, so a 3 s run has several; no `CI` (CI sets it, and a terminal
 * under it is treated as a log: see the last pty case).
 */
const ENV = { AIRLOCK_PROGRESS_INTERVAL: '0.5', CI: undefined };
/** 200 KB a minute, and room for the final summary. */
const boundFor = (ms: number): number => (200_000 * Math.max(ms, 1000)) / 60_000 + 4096;
const ESC = '\u001b';

let tmp: TempDir;
let reg: TestRegistry;
let proxy: SlowProxy;
let refs: string[];
let run = 0;

beforeAll(async () => {
  tmp = await makeTempDir('terminal');
  const layer = (id: string, size: number) => ({ id, size, randomRatio: 1, files: 2 });
  const corpus = (await writeCorpus(`${tmp.path}/upstream`, {
    images: [
      { name: 'example.com/term/app:v1', layers: [layer('term-base', 6 * MiB), layer('term-v1', 3 * MiB)] },
      { name: 'example.com/term/app:v2', layers: [layer('term-base', 6 * MiB), layer('term-v2', 3 * MiB)] },
    ],
  })) as { dir: string };
  reg = await startRegistry();
  await seedRegistry(reg, corpus.dir);
  proxy = await startSlowProxy(reg.host);
  proxy.rate = RATE;
  refs = [`${proxy.host}/term/app:v1`, `${proxy.host}/term/app:v2`];
});

afterAll(async () => {
  await proxy?.close();
  await reg?.stop();
  await tmp?.remove();
});

const createArgs = (...extra: string[]): string[] => [
  'bundle',
  'create',
  ...refs,
  '-o',
  `${tmp.path}/out-${run++}.tar.zst`,
  '--unsigned',
  '--plain-http',
  ...extra,
];

describe('bundle create in a terminal, a pipe and a log', () => {
  it('in a 0×0 pty: plain lines, progress per interval, a line per image, no escape sequence, small', async () => {
    const r = await airlockInPty(createArgs(), { rows: 0, cols: 0 }, ENV);
    console.log(`0x0 pty: ${r.output.length} bytes in ${(r.ms / 1000).toFixed(1)} s`);
    expect(r.code, r.output).toBe(0);
    expect(r.output).not.toContain(ESC);
    expect(r.output.match(/^copying blobs: .* \(\d+%\), .*\/s/gm)?.length ?? 0).toBeGreaterThanOrEqual(2);
    expect(r.output.match(/^ {2}stored \S+term\/app:v[12] /gm)).toHaveLength(2);
    expect(r.output.length).toBeLessThan(boundFor(r.ms));
  });

  it('in a 40×120 pty: the spinner, with the image in flight, within the width, small', async () => {
    const r = await airlockInPty(createArgs(), { rows: 40, cols: 120 }, ENV);
    console.log(`40x120 pty: ${r.output.length} bytes in ${(r.ms / 1000).toFixed(1)} s`);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain(`${ESC}[?25l`); // ora hides the cursor while it spins
    // ora's frames, coloured: the escape sequences become line ends, the spinner's lines remain.
    const drawn = r.output
      .replace(/\u001b\[3\dm([⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏])\u001b\[39m/g, '$1')
      .replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '\n')
      .split(/[\r\n]/)
      .filter((l) => l.includes('copying blobs: '));
    expect(drawn.some((l) => /^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] copying blobs: /.test(l))).toBe(true);
    expect(drawn.some((l) => / · \S*term\/app:v[12]$/.test(l))).toBe(true);
    for (const l of drawn) expect(l.length, l).toBeLessThanOrEqual(120);
    expect(r.output.match(/ {2}stored \S+term\/app:v[12] /g)).toHaveLength(2);
    expect(r.output.length).toBeLessThan(boundFor(r.ms));
  });

  it('in a 40×120 pty of a CI runner (CI set) or a dumb terminal: plain lines, as in a log', async () => {
    for (const env of [{ CI: 'true' }, { TERM: 'dumb' }]) {
      const r = await airlockInPty(createArgs(), { rows: 40, cols: 120 }, { ...ENV, ...env });
      expect(r.code, r.output).toBe(0);
      expect(r.output, JSON.stringify(env)).not.toContain(ESC);
      expect(r.output).toMatch(/^copying blobs: .* \(\d+%\), .*\/s/m);
    }
  });

  it('piped with --log-format json: one JSON object per line, progress at the interval with the image in flight', async () => {
    const started = performance.now();
    const r = await airlock(createArgs('--log-format', 'json'), { env: ENV });
    const ms = performance.now() - started;
    expect(r.code, r.stderr).toBe(0);
    const entries = r.stderr
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; image?: string; name?: string; phase?: string });
    const progress = entries.filter((e) => e.event === 'progress' && e.phase === 'copying blobs');
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress.some((e) => e.image?.endsWith('term/app:v1') || e.image?.endsWith('term/app:v2'))).toBe(true);
    expect(entries.filter((e) => e.event === 'image-done').map((e) => e.name?.replace(/^[^/]+\//, ''))).toEqual(['term/app:v1', 'term/app:v2']);
    expect(r.stderr.length).toBeLessThan(boundFor(ms));
    // stdout keeps the human summary; the log has no escape sequence either.
    expect(r.stdout).toContain('wrote ');
    expect(r.stderr).not.toContain(ESC);
  });

  it('a failure with --log-format json ends the log with one error entry', async () => {
    const r = await airlock(['bundle', 'verify', `${tmp.path}/missing.tar.zst`, '--log-format', 'json']);
    expect(r.code).not.toBe(0);
    const last = JSON.parse(r.stderr.trimEnd().split('\n').at(-1)!) as { event: string; code: string; exitCode: number };
    expect(last).toMatchObject({ event: 'error', exitCode: r.code });
    expect(last.code).toMatch(/^[A-Z_]+$/);
  });
});
