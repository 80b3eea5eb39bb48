/**
 * The test harness itself: the sample corpus is deterministic and well formed, the registries start
 * (plain, and TLS + basic auth), seeding preserves every digest, and skopeo agrees on all of it.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Parser } from 'tar';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEDIA_TYPES as MT, writeCorpus } from '../../samples/corpus.mjs';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { type SeededImage, seedRegistry } from '../support/seed.js';
import { accessFor, skopeoCopy, skopeoInspectRaw } from '../support/skopeo.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

type Corpus = Awaited<ReturnType<typeof writeCorpus>>;

const sha256 = (data: Uint8Array): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const readBlob = (dir: string, digest: string): Promise<Buffer> => readFile(join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)));

let work: TempDir;
let corpus: Corpus;

beforeAll(async () => {
  work = await makeTempDir('harness');
  corpus = await writeCorpus(join(work.path, 'corpus'));
});
afterAll(async () => {
  await work?.remove();
});

describe('sample corpus', () => {
  it('is byte-for-byte deterministic', async () => {
    const again = await writeCorpus(join(work.path, 'again'));
    expect(again.images.map((i) => [i.name, i.digest])).toEqual(corpus.images.map((i) => [i.name, i.digest]));
    for (const file of ['index.json', 'oci-layout']) {
      expect(await readFile(join(again.dir, file))).toEqual(await readFile(join(corpus.dir, file)));
    }
    const blobs = await readdir(join(corpus.dir, 'blobs', 'sha256'));
    expect(await readdir(join(again.dir, 'blobs', 'sha256'))).toEqual(blobs);
    expect(blobs.sort()).toEqual([...corpus.blobs.keys()].map((d) => d.slice(7)).sort());
    for (const hex of blobs) expect(sha256(await readBlob(corpus.dir, `sha256:${hex}`))).toBe(`sha256:${hex}`);
  });

  it('holds the shapes the integration tests rely on', () => {
    const byName = new Map(corpus.images.map((i) => [i.name, i]));
    const etcd = ['v3.3.0', 'v3.4.1', 'v3.5.0', 'v2.3.8', 'latest'].map((t) => `quay.io/coreos/etcd:${t}`);
    for (const name of ['docker.io/library/busybox:musl', ...etcd]) expect(byName.has(name)).toBe(true);
    const index = byName.get('quay.io/coreos/etcd:v3.5.0');
    expect(index?.mediaType).toBe(MT.ociIndex);
    expect(index?.platforms).toEqual([
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ]);
    const docker = byName.get('quay.io/coreos/etcd:v2.3.8');
    expect(docker?.mediaType).toBe(MT.dockerManifest);
    expect(docker?.blobs.map((b) => b.mediaType)).toEqual([MT.dockerConfig, MT.dockerLayerGzip, MT.dockerLayerGzip]);
    expect(corpus.images.filter((i) => i.mediaType === MT.dockerList).map((i) => i.platforms.length)).toEqual([2]);
    expect(byName.get('quay.io/coreos/etcd:v3.4.1')?.blobs.some((b) => b.mediaType === MT.ociLayerTar)).toBe(true);
    const base = byName.get('quay.io/coreos/etcd:v3.3.0')?.blobs[1]?.digest;
    expect(corpus.images.filter((i) => i.blobs.some((b) => b.digest === base)).length).toBeGreaterThanOrEqual(4);
  });

  it('names every image in index.json with both annotations', async () => {
    const index = JSON.parse(await readFile(join(corpus.dir, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string; annotations: Record<string, string> }>;
    };
    expect(index.manifests.map((m) => [m.annotations['org.opencontainers.image.ref.name'], m.digest])).toEqual(corpus.images.map((i) => [i.name, i.digest]));
    for (const m of index.manifests) {
      expect(m.annotations['io.containerd.image.name']).toBe(m.annotations['org.opencontainers.image.ref.name']);
    }
  });

  it('has layers that are tar archives matching the config diff_ids', async () => {
    const manifests = corpus.images.flatMap((i): Array<{ digest: string }> => (i.children.length > 0 ? i.children : [i]));
    for (const m of manifests) {
      const doc = JSON.parse((await readBlob(corpus.dir, m.digest)).toString()) as {
        config: { digest: string };
        layers: Array<{ digest: string; mediaType: string }>;
      };
      const config = JSON.parse((await readBlob(corpus.dir, doc.config.digest)).toString()) as {
        rootfs: { diff_ids: string[] };
      };
      const tars = await Promise.all(
        doc.layers.map(async (l) => {
          const blob = await readBlob(corpus.dir, l.digest);
          return l.mediaType === MT.ociLayerTar ? blob : gunzipSync(blob);
        }),
      );
      expect(tars.map(sha256)).toEqual(config.rootfs.diff_ids);
      for (const tar of tars) expect((await listTar(tar)).length).toBeGreaterThanOrEqual(4);
    }
  });

  it('takes layer sizes and a count of tiny images', async () => {
    const small = await writeCorpus(join(work.path, 'spec'), {
      images: [{ name: 'bench.local/big:v1', layers: [{ id: 'big', size: 3 * 1024 * 1024, randomRatio: 1 }] }],
      tinyImages: 3,
    });
    expect(small.images.map((i) => i.name)).toEqual([
      'bench.local/big:v1',
      'example.com/tiny/img-0:v1.0.0',
      'example.com/tiny/img-1:v1.0.0',
      'example.com/tiny/img-2:v1.0.0',
    ]);
    const layer = small.images[0]?.blobs[1];
    expect(layer?.size).toBeGreaterThan(3 * 1024 * 1024);
  });
});

describe('test registries', () => {
  let plain: TestRegistry;
  let secure: TestRegistry;
  const seeded = new Map<TestRegistry, Map<string, SeededImage>>();

  beforeAll(async () => {
    [plain, secure] = await Promise.all([startRegistry(), startRegistry({ tls: true, basicAuth: { username: 'airlock', password: 's3cret pass' } })]);
    for (const reg of [plain, secure]) seeded.set(reg, await seedRegistry(reg, corpus.dir));
  });
  afterAll(async () => {
    await Promise.all([plain?.stop(), secure?.stop()]);
  });

  it('seeds every image under its path without the upstream host', () => {
    const map = seeded.get(plain);
    expect(map?.get('quay.io/coreos/etcd:v3.3.0')?.ref).toBe(`${plain.host}/coreos/etcd:v3.3.0`);
    expect(map?.get('docker.io/library/busybox:musl')?.ref).toBe(`${plain.host}/library/busybox:musl`);
    expect(map?.size).toBe(corpus.images.length);
  });

  it('serves every digest unchanged over plain HTTP (skopeo agrees)', async () => {
    await expectDigests(plain);
  });

  it('serves every digest unchanged over TLS with basic auth (skopeo agrees)', async () => {
    expect(secure.url).toMatch(/^https:/);
    await expectDigests(secure);
    const ref = `docker://${secure.host}/coreos/etcd:v2.3.8`;
    const unverified = await skopeoInspectRaw(ref, { ...accessFor(secure), tlsVerify: false, certDir: undefined });
    expect(unverified.digest).toBe(corpus.images.find((i) => i.name.endsWith(':v2.3.8'))?.digest);
  });

  it('refuses anonymous requests on the auth registry', async () => {
    const dispatcher = new Agent({ connect: { ca: await readFile(secure.caFile ?? '', 'utf8') } });
    try {
      const res = await request(`${secure.url}/v2/`, { dispatcher });
      await res.body.dump();
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Basic /);
    } finally {
      await dispatcher.close();
    }
  });

  it('stop() ends the registry and removes its files', async () => {
    const reg = await startRegistry();
    await reg.stop();
    await expect(readdir(reg.root)).rejects.toThrow(/ENOENT/);
    await expect(request(`${reg.url}/v2/`)).rejects.toThrow();
  });

  async function expectDigests(reg: TestRegistry): Promise<void> {
    const images = [...(seeded.get(reg)?.values() ?? [])];
    const got = await Promise.all(images.map((i) => skopeoInspectRaw(`docker://${i.ref}`, accessFor(reg))));
    expect(got.map((g) => [g.mediaType, g.digest])).toEqual(images.map((i) => [i.mediaType, i.digest]));
    expect(images.map((i) => i.digest)).toEqual(corpus.images.map((i) => i.digest));
  }
});

describe('skopeo reading the corpus layout', () => {
  it('copies OCI images out of it with digests preserved', async () => {
    const out = join(work.path, 'skopeo-out');
    const cases = [
      ['quay.io/coreos/etcd:v3.3.0', false],
      ['quay.io/coreos/etcd:v3.4.1', false],
      ['quay.io/coreos/etcd:v3.5.0', true],
    ] as const;
    for (const [name, all] of cases) {
      await skopeoCopy(`oci:${corpus.dir}:${name}`, `oci:${out}:${name}`, { all, preserveDigests: true });
    }
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    const want = cases.map(([name]) => corpus.images.find((i) => i.name === name)?.digest);
    expect(index.manifests.map((m) => m.digest)).toEqual(want);
  });
});

/** Entry paths of a tar archive, parsed strictly by node-tar. */
function listTar(tar: Buffer): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const paths: string[] = [];
    const parser = new Parser({
      strict: true,
      onReadEntry: (entry) => {
        paths.push(entry.path);
        entry.resume();
      },
    });
    parser.on('error', reject);
    parser.on('end', () => resolve(paths));
    parser.end(tar);
  });
}
