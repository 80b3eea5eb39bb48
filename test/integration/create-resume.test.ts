/**
 * `bundle create` after an interruption: kill -9 or Ctrl-C in the middle of the copy keeps
 * `OUT.partial` (never OUT), and running the same command again continues it, fetching only what
 * was not there yet, into a bundle byte-identical to an uninterrupted run with the same created time.
 *
 * The registry sits behind a byte-counting TCP proxy (support/slow-proxy.ts) that can also slow it down, so that there
 * is time to interrupt the copy and so that the rerun's downloads can be measured.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { loadSigningKey } from '../../src/bundle/keys.js';
import { readHead } from '../../src/bundle/read-head.js';
import { endpointsFrom } from '../../src/cli/registry-options.js';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { expandImages } from '../../src/copy/expand.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { createBundle } from '../../src/ops/create.js';
import { AIRLOCK_BIN, airlock } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry } from '../support/seed.js';
import { startSlowProxy, type SlowProxy } from '../support/slow-proxy.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
/** While a run is to be interrupted the proxy serves 24 MiB/s: the ~40 MiB copy takes ~1.7 s. */
const SLOW = 24 * MiB;

let tmp: TempDir;
let reg: TestRegistry;
let proxy: SlowProxy;
let ref: string;
/** One 32 MiB gzip layer (stored in Raw blocks), for a cut inside a blob. */
let hugeRef: string;
const HUGE_LAYER = 32 * MiB;
let key: string;
/** Bytes of every blob of the image. */
let blobBytes: number;

beforeAll(async () => {
  tmp = await makeTempDir('create-resume');
  const layer = (id: string, size: number) => ({ id, size, randomRatio: 1, files: 2 });
  const corpus = (await writeCorpus(`${tmp.path}/upstream`, {
    images: [{ name: 'example.com/big/app:v1', layers: [layer('app-a', 16 * MiB), layer('app-b', 16 * MiB), layer('app-c', 8 * MiB)] }],
  })) as { dir: string; blobs: Map<string, { size: number }> };
  blobBytes = [...corpus.blobs.values()].reduce((n, b) => n + b.size, 0);
  const huge = (await writeCorpus(`${tmp.path}/huge`, {
    seed: 'create-resume-huge',
    images: [{ name: 'example.com/huge/app:v1', layers: [{ id: 'huge', size: HUGE_LAYER, randomRatio: 1, files: 1 }] }],
  })) as { dir: string };
  reg = await startRegistry();
  await seedRegistry(reg, corpus.dir);
  await seedRegistry(reg, huge.dir);
  proxy = await startSlowProxy(reg.host);
  ref = `${proxy.host}/big/app:v1`;
  hugeRef = `${proxy.host}/huge/app:v1`;
  expect((await airlock(['key', 'generate', '--out', `${tmp.path}/signer`])).code).toBe(0);
  key = `${tmp.path}/signer.key`;
});

afterAll(async () => {
  await proxy?.close();
  await reg?.stop();
  await tmp?.remove();
});

const createArgs = (out: string, ...extra: string[]): string[] => ['bundle', 'create', ref, '-o', out, '--sign-key', key, '--plain-http', ...extra];

/** Start `airlock ARGS` and send `signal` once OUT.partial has `atBytes` bytes; resolves at exit. */
async function interrupt(args: string[], partial: string, atBytes: number, signal: NodeJS.Signals) {
  proxy.rate = SLOW;
  const child: ChildProcess = spawn(process.execPath, [AIRLOCK_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let sent = false;
  const timer = setInterval(() => {
    if (!sent && existsSync(partial) && statSync(partial).size >= atBytes) {
      sent = true;
      child.kill(signal);
    }
  }, 5);
  try {
    const code = await exited;
    return { code, sent, stderr };
  } finally {
    clearInterval(timer);
    proxy.rate = Infinity;
  }
}

describe('bundle create continues an interrupted run', () => {
  it('after kill -9: fetches only what was missing, into the same bytes as one uninterrupted run', async () => {
    const out = `${tmp.path}/killed.tar.zst`;
    const partial = `${out}.partial`;
    const first = await interrupt(createArgs(out, '-q'), partial, 20 * MiB, 'SIGKILL');
    expect(first.sent).toBe(true);
    expect(existsSync(out)).toBe(false);
    const left = statSync(partial).size;
    expect(left).toBeLessThan(blobBytes);

    proxy.served = 0;
    const rerun = await airlock(createArgs(out, '--json'));
    expect(rerun.stderr).toBe('');
    expect(rerun.code).toBe(0);
    const result = JSON.parse(rerun.stdout) as { reusedBytes: number; reusedBlobs: number; sha256: string };
    // The first layer (16 MiB) ended before byte 20 MiB of the file: it was not fetched again.
    expect(result.reusedBytes).toBeGreaterThan(16 * MiB);
    expect(result.reusedBlobs).toBeGreaterThanOrEqual(3);
    expect(proxy.served).toBeLessThan(blobBytes - result.reusedBytes + MiB);
    expect(existsSync(partial)).toBe(false);

    const verified = await airlock(['bundle', 'verify', out, '--trust', `${tmp.path}/signer.pub`]);
    expect(verified.code).toBe(0);
    const { stdout } = await run('sha256sum', ['-c', 'killed.tar.zst.sha256'], { cwd: tmp.path });
    expect(stdout).toContain('OK');

    // One uninterrupted run with the same creation time and sequence writes exactly the same file.
    // The key's record already holds that sequence (an explicit one must be above it), so the run
    // gets a record of its own, still empty.
    const { created, sequence } = JSON.parse((await readHead(out)).bundleJson.toString()) as { created: string; sequence: number };
    const again = `${tmp.path}/uninterrupted.tar.zst`;
    const endpoints = await endpointsFrom({ plainHttp: true });
    try {
      const images = await expandImages(imageListFromRefs([ref]).entries, endpoints);
      const direct = await createBundle({
        images,
        output: again,
        signingKey: await loadSigningKey(key),
        now: () => new Date(created),
        sequenceFile: `${tmp.path}/uninterrupted.sequence`,
        sequence,
      });
      expect(direct.reusedBytes).toBe(0);
      expect(direct.sha256).toBe(result.sha256);
    } finally {
      await endpoints.close();
    }
    expect((await readFile(again)).equals(await readFile(out))).toBe(true);
  });

  it('after kill -9 inside a layer: keeps its complete blocks and fetches only the rest of it', async () => {
    const out = `${tmp.path}/inside.tar.zst`;
    const partial = `${out}.partial`;
    const args = ['bundle', 'create', hugeRef, '-o', out, '--sign-key', key, '--plain-http'];
    const first = await interrupt([...args, '-q'], partial, 20 * MiB, 'SIGKILL');
    expect(first.sent).toBe(true);
    expect(existsSync(out)).toBe(false);
    const cutAt = statSync(partial).size;
    expect(cutAt).toBeLessThan(HUGE_LAYER);

    proxy.served = 0;
    const rerun = await airlock([...args, '--json']);
    expect(rerun.code, rerun.stderr).toBe(0);
    const result = JSON.parse(rerun.stdout) as { reusedBytes: number; reusedBlobs: number; sha256: string; totals: { bytes: number } };
    // The layer was not complete, yet what reached the file (20 MiB or more, less one write
    // batch still in memory at the kill) was kept.
    expect(result.reusedBytes).toBeLessThan(HUGE_LAYER);
    expect(result.reusedBytes).toBeGreaterThan(12 * MiB);
    expect(rerun.stderr).toBe('');
    // Bytes through the proxy: the layer's remainder, the manifest and HTTP headers, nothing more.
    const remainder = result.totals.bytes - result.reusedBytes;
    expect(proxy.served).toBeLessThan(remainder + 256 * 1024);
    expect(proxy.served).toBeGreaterThanOrEqual(remainder);
    console.log(
      `cut at ${(cutAt / MiB).toFixed(1)} MiB of the file (${(HUGE_LAYER / MiB).toFixed(0)} MiB layer): rerun fetched ${(proxy.served / MiB).toFixed(2)} MiB, reused ${(result.reusedBytes / MiB).toFixed(2)} MiB`,
    );

    expect((await airlock(['bundle', 'verify', out, '--trust', `${tmp.path}/signer.pub`])).code).toBe(0);
    // Same creation time and sequence as the resumed run (see the test above): then the same bytes.
    const stamp = JSON.parse((await readHead(out)).bundleJson.toString()) as { created: string; sequence: number };
    const again = `${tmp.path}/inside-uninterrupted.tar.zst`;
    const endpoints = await endpointsFrom({ plainHttp: true });
    try {
      const images = await expandImages(imageListFromRefs([hugeRef]).entries, endpoints);
      const direct = await createBundle({
        images,
        output: again,
        signingKey: await loadSigningKey(key),
        now: () => new Date(stamp.created),
        sequenceFile: `${tmp.path}/inside-uninterrupted.sequence`,
        sequence: stamp.sequence,
      });
      expect(direct.sha256).toBe(result.sha256);
    } finally {
      await endpoints.close();
    }
    expect((await readFile(again)).equals(await readFile(out))).toBe(true);
  });

  it('after Ctrl-C: the error says how to continue, and the rerun says what it reuses', async () => {
    const out = `${tmp.path}/interrupted.tar.zst`;
    const partial = `${out}.partial`;
    const first = await interrupt(createArgs(out), partial, 20 * MiB, 'SIGINT');
    expect(first.code).toBe(EXIT_CODES.INTERRUPTED);
    expect(first.stderr).toContain(`run the same command again to continue from ${partial}`);
    expect(existsSync(partial)).toBe(true);
    expect(existsSync(out)).toBe(false);

    proxy.served = 0;
    const rerun = await airlock(createArgs(out));
    expect(rerun.code).toBe(0);
    expect(rerun.stderr).toMatch(/continuing .*\.partial: [34] of 5 blobs/);
    expect(proxy.served).toBeLessThan(blobBytes - 8 * MiB);
    expect((await airlock(['bundle', 'verify', out, '--trust', `${tmp.path}/signer.pub`])).code).toBe(0);
  });

  it('starts over, saying why, when the partial file was made for another bundle', async () => {
    const out = `${tmp.path}/other.tar.zst`;
    const partial = `${out}.partial`;
    await interrupt(createArgs(out, '-q'), partial, 12 * MiB, 'SIGKILL');
    const unsigned = await airlock(['bundle', 'create', ref, '-o', out, '--unsigned', '--plain-http']);
    expect(unsigned.code).toBe(0);
    expect(unsigned.stderr).toMatch(/not continuing .*it is signed, this bundle is not; starting over/);
    expect((await airlock(['bundle', 'verify', out, '--allow-unsigned'])).code).toBe(0);
  });

  it('--no-resume starts over and fetches everything again', async () => {
    const out = `${tmp.path}/fresh.tar.zst`;
    const partial = `${out}.partial`;
    await interrupt(createArgs(out, '-q'), partial, 12 * MiB, 'SIGKILL');
    expect(existsSync(partial)).toBe(true);
    proxy.served = 0;
    const rerun = await airlock(createArgs(out, '--json', '--no-resume'));
    expect(rerun.code, rerun.stderr).toBe(0);
    expect((JSON.parse(rerun.stdout) as { reusedBlobs: number }).reusedBlobs).toBe(0);
    expect(proxy.served).toBeGreaterThanOrEqual(blobBytes);
  });
});
