/**
 * What a failed `bundle import` leaves behind, against the real docker-registry and real layouts:
 * a new `oci:` layout is removed again, an existing layout's index.json is untouched, and a tag
 * phase that fails part-way (a proxy of our own refuses one tag PUT) reports exactly which tags
 * moved, each to complete content, and which did not; a rerun sets the rest.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, open, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus, type Corpus } from '../../samples/corpus.mjs';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import { generateKeyPair, loadSigningKey } from '../../src/bundle/keys.js';
import { expandImages } from '../../src/copy/expand.js';
import { endpointsFrom } from '../../src/cli/registry-options.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { createBundle } from '../../src/ops/create.js';
import { startRecordingProxy } from '../support/recording-proxy.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const CLI = join(process.cwd(), 'bin', 'airlock');
const TINY = 6;
const MANIFEST_ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

let work: TempDir;
let corpus: Corpus;
let registry: TestRegistry;
let pub: string;
/** Six tiny images, `example.com/tiny/img-N:v1.0.0`. */
let tiny: string;
/** The same, with one layer byte flipped. */
let damaged: string;
/** Two other images, for a layout that exists before the failed import. */
let other: string;

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function bundleFrom(dir: string, names: string[], output: string): Promise<void> {
  const endpoints = await endpointsFrom({});
  try {
    const images = await expandImages(imageListFromRefs(names.map((n) => `oci:${dir}:${n}`)).entries, endpoints);
    await createBundle({ images, output, signingKey: await loadSigningKey(join(work.path, 'signer.key')) });
  } finally {
    await endpoints.close();
  }
}

/** Flip one byte inside the archive entry of `digest`. */
async function damage(from: string, to: string, digest: string): Promise<void> {
  await copyFile(from, to);
  const reader = await ArchiveReader.open(to);
  const entry = reader.entry(`blobs/sha256/${digest.slice(7)}`)!;
  await reader.close();
  const fh = await open(to, 'r+');
  const at = entry.offset + Math.floor(entry.size / 2);
  const byte = Buffer.alloc(1);
  await fh.read(byte, 0, 1, at);
  await fh.write(Buffer.from([byte[0]! ^ 0xff]), 0, 1, at);
  await fh.close();
}

/** GET a manifest straight from the registry: its digest, or undefined on 404. */
async function manifestDigest(
  repository: string,
  tag: string,
): Promise<{ digest: string; body: { layers?: Array<{ digest: string }>; config?: { digest: string } } } | undefined> {
  const res = await request(`${registry.url}/v2/${repository}/manifests/${tag}`, { headers: { accept: MANIFEST_ACCEPT } });
  if (res.statusCode === 404) {
    await res.body.dump();
    return undefined;
  }
  expect(res.statusCode).toBe(200);
  const text = await res.body.text();
  return { digest: String(res.headers['docker-content-digest']), body: JSON.parse(text) as never };
}

async function blobExists(repository: string, digest: string): Promise<boolean> {
  const res = await request(`${registry.url}/v2/${repository}/blobs/${digest}`, { method: 'HEAD' });
  await res.body.dump();
  return res.statusCode === 200;
}

beforeAll(async () => {
  if (!existsSync(join(process.cwd(), 'dist', 'cli', 'commands', 'import.js'))) throw new Error('run npm run build first: these tests run bin/airlock');
  work = await makeTempDir('import-leftovers');
  pub = (await generateKeyPair(join(work.path, 'signer'))).publicKeyFile;
  [corpus, registry] = await Promise.all([writeCorpus(join(work.path, 'corpus'), { images: [], tinyImages: TINY }), startRegistry()]);
  const otherDir = join(work.path, 'other-corpus');
  await writeCorpus(otherDir, { seed: 'leftovers-other', images: [{ name: 'example.com/other/app:1', layers: [{ id: 'other', size: 4096, files: 1 }] }] });
  tiny = join(work.path, 'tiny.tar.zst');
  damaged = join(work.path, 'damaged.tar.zst');
  other = join(work.path, 'other.tar.zst');
  await Promise.all([
    bundleFrom(
      corpus.dir,
      corpus.images.map((i) => i.name),
      tiny,
    ),
    bundleFrom(otherDir, ['example.com/other/app:1'], other),
  ]);
  // The last image's own layer: several blobs land before the damaged one is reached.
  await damage(tiny, damaged, corpus.images.at(-1)!.blobs.at(-1)!.digest);
}, 60_000);
afterAll(async () => {
  await registry?.stop();
  await work?.remove();
});

describe('a failed import into an OCI layout', () => {
  it('removes a layout it created, parents included', async () => {
    const parent = join(work.path, 'new-parent');
    const dir = join(parent, 'layout');
    const run = await cli(['bundle', 'import', damaged, '--to', `oci:${dir}`, '--trust', pub]);
    expect(run.code, run.stderr).toBe(11);
    expect(existsSync(parent)).toBe(false);
    const ok = await cli(['bundle', 'import', tiny, '--to', `oci:${dir}`, '--trust', pub]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(existsSync(join(dir, 'index.json'))).toBe(true);
  });

  it("leaves an existing layout's index.json as it was", async () => {
    const dir = join(work.path, 'existing');
    const first = await cli(['bundle', 'import', other, '--to', `oci:${dir}`, '--trust', pub]);
    expect(first.code, first.stderr).toBe(0);
    const index = await readFile(join(dir, 'index.json'));
    const blobsBefore = await readdir(join(dir, 'blobs', 'sha256'));
    const run = await cli(['bundle', 'import', damaged, '--to', `oci:${dir}`, '--trust', pub]);
    expect(run.code, run.stderr).toBe(11);
    expect(await readFile(join(dir, 'index.json'))).toEqual(index);
    // Verified blobs that landed before the damaged one may stay (content-addressed, unnamed).
    expect((await readdir(join(dir, 'blobs', 'sha256'))).filter((f) => f.startsWith('.'))).toEqual([]);
    expect((await readdir(join(dir, 'blobs', 'sha256'))).length).toBeGreaterThanOrEqual(blobsBefore.length);
    expect(existsSync(join(dir, 'oci-layout'))).toBe(true);
  });
});

describe('a tag phase that fails part-way into a registry', () => {
  it('lists the tags that moved (each to complete content) and the ones that did not; a rerun sets them', async () => {
    const proxy = await startRecordingProxy(registry.host);
    try {
      // Like a registry with an immutable tag: the fourth image's tag PUT is refused, every time.
      const refused = `tags/example.com/tiny/img-3/manifests/v1.0.0`;
      proxy.intercept = (req) =>
        req.method === 'PUT' && req.url === `/v2/${refused}`
          ? { status: 403, headers: { 'content-type': 'application/json' }, body: '{"errors":[{"code":"DENIED","message":"tag is immutable"}]}' }
          : undefined;
      const args = (host: string): string[] => ['bundle', 'import', tiny, '--to', `${host}/tags`, '--plain-http', '--trust', pub, '--concurrency', '1'];
      const failed = await cli([...args(proxy.host), '--json']);
      expect(failed.code, failed.stderr).toBe(5);
      const error = (JSON.parse(failed.stdout) as { error: { message: string; details: { tags: { moved: string[]; notMoved: string[] } } } }).error;
      const { moved, notMoved } = error.details.tags;
      const all = corpus.images.map((i) => `${proxy.host}/tags/${i.name}`);
      expect([...moved, ...notMoved].sort()).toEqual([...all].sort());
      expect(notMoved).toContain(`${proxy.host}/tags/example.com/tiny/img-3:v1.0.0`);
      expect(moved.length).toBeGreaterThan(0);
      expect(error.message).toContain(`${moved.length} of ${TINY} tags moved`);
      // The human form lists both sets.
      expect(failed.stderr).toContain(`tags moved (${moved.length}):`);
      expect(failed.stderr).toContain(`tags NOT moved (${notMoved.length}):`);
      expect(failed.stderr).toContain(`    ${notMoved[0]}`);

      // Exactly those moved, each to a manifest whose blobs are all there; the rest are absent.
      for (const image of corpus.images) {
        const name = `${proxy.host}/tags/${image.name}`;
        const repository = `tags/${image.repository}`;
        const got = await manifestDigest(repository, image.tag);
        if (notMoved.includes(name)) {
          expect(got, name).toBeUndefined();
          continue;
        }
        expect(got?.digest, name).toBe(image.digest);
        for (const d of [got!.body.config!.digest, ...got!.body.layers!.map((l) => l.digest)]) expect(await blobExists(repository, d), d).toBe(true);
      }

      const rerun = await cli(args(registry.host));
      expect(rerun.code, rerun.stderr).toBe(0);
      for (const image of corpus.images) expect((await manifestDigest(`tags/${image.repository}`, image.tag))?.digest, image.name).toBe(image.digest);
    } finally {
      await proxy.stop();
    }
  });
});
