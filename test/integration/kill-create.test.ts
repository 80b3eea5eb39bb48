/**
 * kill -9 of `bundle create` at ten seeded points of its output (before the first byte, inside
 * blobs, between them, near the end), each run continuing what the previous one left: the last run
 * completes into exactly the bytes of one uninterrupted run with the same creation time, a file
 * named OUT never exists before that, and the bundle verifies.
 */
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { loadSigningKey } from '../../src/bundle/keys.js';
import { readHead } from '../../src/bundle/read-head.js';
import { endpointsFrom } from '../../src/cli/registry-options.js';
import { expandImages } from '../../src/copy/expand.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { createBundle } from '../../src/ops/create.js';
import { AIRLOCK_BIN, airlock } from '../support/cli.js';
import { startRecordingProxy, type RecordingProxy } from '../support/recording-proxy.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry } from '../support/seed.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const MiB = 1024 * 1024;
const KILLS = 10;
const SEED = 0x5eed_c0de;
/** While a run is to be killed the proxy serves 12 MiB/s: each run lasts long enough to be caught. */
const SLOW = 12 * MiB;

let tmp: TempDir;
let reg: TestRegistry;
let proxy: RecordingProxy;
let refs: string[];
let key: string;
let blobBytes: number;

/** mulberry32: a small seeded PRNG, so the kill points are the same every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

beforeAll(async () => {
  tmp = await makeTempDir('kill-create');
  const layer = (id: string, size: number, extra: object = {}) => ({ id, size, randomRatio: 1, files: 2, ...extra });
  const corpus = (await writeCorpus(`${tmp.path}/upstream`, {
    seed: 'kill-create',
    images: [
      { name: 'example.com/kill/a:1', layers: [layer('base', 2 * MiB), layer('a', 6 * MiB)] },
      {
        name: 'example.com/kill/b:1',
        layers: [layer('base', 2 * MiB), layer('b', 5 * MiB), layer('b-plain', 1 * MiB, { uncompressed: true, randomRatio: 0.5 })],
      },
      { name: 'example.com/kill/c:1', layers: [layer('c', 4 * MiB)] },
    ],
  })) as { dir: string; blobs: Map<string, { size: number }> };
  blobBytes = [...corpus.blobs.values()].reduce((n, b) => n + b.size, 0);
  reg = await startRegistry();
  await seedRegistry(reg, corpus.dir);
  proxy = await startRecordingProxy(reg.host);
  refs = ['a', 'b', 'c'].map((n) => `${proxy.host}/kill/${n}:1`);
  expect((await airlock(['key', 'generate', '--out', `${tmp.path}/signer`])).code).toBe(0);
  key = `${tmp.path}/signer.key`;
}, 120_000);

afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
  await tmp?.remove();
});

/** Run create and SIGKILL it once OUT.partial holds `atBytes` bytes; resolves when it is gone. */
function killAt(args: string[], partial: string, atBytes: number): Promise<{ killed: boolean; code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [AIRLOCK_BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let killed = false;
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const poll = setInterval(() => {
      if (!killed && existsSync(partial) && statSync(partial).size >= atBytes) {
        killed = true;
        child.kill('SIGKILL');
      }
    }, 2);
    child.once('error', reject);
    child.once('close', (code) => {
      clearInterval(poll);
      resolve({ killed, code, stderr });
    });
  });
}

describe('bundle create killed with -9 again and again', () => {
  it(`converges after ${KILLS} kills at seeded points to the bytes of one uninterrupted run`, async () => {
    const out = `${tmp.path}/bundle.tar.zst`;
    const partial = `${out}.partial`;
    const args = ['bundle', 'create', ...refs, '-o', out, '--sign-key', key, '--plain-http', '-q'];
    const random = prng(SEED);
    // Points in the archive (which is about as large as its blobs): ascending, so each run gets
    // further; the first at byte 1 kills while the head is being written.
    const points = [1, ...Array.from({ length: KILLS - 1 }, () => Math.floor(random() * blobBytes * 0.9))].sort((a, b) => a - b);
    let killed = 0;
    proxy.rate = SLOW;
    try {
      for (const at of points) {
        const run = await killAt(args, partial, at);
        expect(existsSync(out), `a file named OUT after a kill at ${at}`).toBe(false);
        if (!run.killed) {
          // A point below what the previous run left: the rerun ran to the end before the file grew.
          expect(run.code, run.stderr).toBe(0);
          break;
        }
        killed++;
      }
    } finally {
      proxy.rate = Infinity;
    }
    expect(killed).toBe(KILLS);

    const final = await airlock([...args.filter((a) => a !== '-q'), '--json']);
    expect(final.code, final.stderr).toBe(0);
    expect(existsSync(partial)).toBe(false);
    const result = JSON.parse(final.stdout) as { sha256: string };
    expect((await airlock(['bundle', 'verify', out, '--trust', `${tmp.path}/signer.pub`])).code).toBe(0);

    // Same creation time and sequence as the interrupted run: then the same bytes. The key's record
    // already holds that sequence, so the comparison run gets a record of its own.
    const stamp = JSON.parse((await readHead(out)).bundleJson.toString()) as { created: string; sequence: number };
    const again = `${tmp.path}/uninterrupted.tar.zst`;
    const endpoints = await endpointsFrom({ plainHttp: true });
    try {
      const images = await expandImages(imageListFromRefs(refs).entries, endpoints);
      const direct = await createBundle({
        images,
        output: again,
        signingKey: await loadSigningKey(key),
        now: () => new Date(stamp.created),
        sequenceFile: `${tmp.path}/uninterrupted.sequence`,
        sequence: stamp.sequence,
      });
      expect(direct.sha256).toBe(result.sha256);
    } finally {
      await endpoints.close();
    }
    expect((await readFile(again)).equals(await readFile(out))).toBe(true);
  }, 240_000);
});
