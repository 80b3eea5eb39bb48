/**
 * A registry cluster as the import target: two `docker-registry` replicas sharing one storage root
 * and one `http.secret`, behind a round-robin balancer (test/support/round-robin.ts) that sends
 * each request to the other replica, so upload sessions (POST, PATCH, PUT) hop between them and a
 * HEAD or mount right after a PUT lands on the replica that did not take it. `bundle import`, its
 * rerun (a no-op), a delta import and `airlock copy` all land the exact digests, read back from
 * each replica directly.
 */
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus, type Corpus } from '../../samples/corpus.mjs';
import { readIndex } from '../../src/layout/index-file.js';
import { airlock } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { startRoundRobin, type RoundRobin } from '../support/round-robin.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const GEN1 = ['docker.io/library/busybox:musl', 'quay.io/coreos/etcd:v3.3.0', 'docker.io/library/alpine:3.18'];
const BIG = 'example.com/big/img:v1';
const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

let tmp: TempDir;
let corpus: Corpus;
let big: Corpus;
let replicas: TestRegistry[];
let lb: RoundRobin;
/** Every named image of the corpus (and the big one) → its digest. */
const digests = new Map<string, string>();

async function namedDigests(dir: string): Promise<void> {
  for (const d of (await readIndex(dir)).manifests) {
    const name = d.annotations?.['org.opencontainers.image.ref.name'];
    if (name !== undefined) digests.set(name, d.digest);
  }
}

/** The digest `host` serves for `repository:tag`, or undefined (404). */
async function digestOn(host: string, repository: string, tag: string): Promise<string | undefined> {
  const res = await request(`http://${host}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: MANIFEST_ACCEPT } });
  await res.body.dump();
  if (res.statusCode === 404) return undefined;
  expect(res.statusCode).toBe(200);
  return String(res.headers['docker-content-digest']);
}

/** Every image of `names` is at `prefix/NAME` with its exact digest, on each replica and through the balancer. */
async function expectLanded(names: readonly string[], prefix: string): Promise<void> {
  for (const name of names) {
    const at = name.lastIndexOf(':');
    const repository = `${prefix}/${name.slice(0, at)}`;
    for (const host of [...replicas.map((r) => r.host), lb.host]) {
      expect(await digestOn(host, repository, name.slice(at + 1)), `${name} on ${host}`).toBe(digests.get(name));
    }
  }
}

/** Upload sessions that were served by more than one replica, since log entry `from`. */
function hoppedSessions(from: number): number {
  const log = lb.log.slice(from);
  const ids = new Set(log.flatMap((e) => [/\/blobs\/uploads\/([^/?]+)/.exec(e.url)?.[1], /\/blobs\/uploads\/([^/?]+)/.exec(e.location ?? '')?.[1]]));
  return [...lb.uploadSessions()].filter(([id, backends]) => ids.has(id) && backends.size > 1).length;
}

const bundlePath = (name: string): string => join(tmp.path, name);

async function importBundle(name: string, extra: string[] = []): Promise<{ blobs: { uploaded: number; mounted: number; present: number } }> {
  const r = await airlock([
    'bundle',
    'import',
    bundlePath(name),
    '--to',
    `${lb.host}/m`,
    '--trust',
    join(tmp.path, 'signer.pub'),
    '--plain-http',
    '--json',
    ...extra,
  ]);
  expect(r.code, r.stderr + r.stdout).toBe(0);
  const out = JSON.parse(r.stdout) as { blobs?: unknown; result?: { blobs?: unknown } };
  return (out.result ?? out) as { blobs: { uploaded: number; mounted: number; present: number } };
}

beforeAll(async () => {
  tmp = await makeTempDir('cluster');
  [corpus, big] = await Promise.all([
    writeCorpus(join(tmp.path, 'corpus')),
    writeCorpus(join(tmp.path, 'big'), { images: [{ name: BIG, layers: [{ id: 'big', size: 9 * 1024 * 1024 + 12345, uncompressed: true }] }] }),
  ]);
  await Promise.all([namedDigests(corpus.dir), namedDigests(big.dir)]);
  const shared = { storageRoot: join(tmp.path, 'shared-storage'), secret: 'cluster-secret-3f9a' };
  replicas = [await startRegistry(shared), await startRegistry(shared)];
  lb = await startRoundRobin(replicas.map((r) => r.host));
  expect((await airlock(['key', 'generate', '--out', join(tmp.path, 'signer')])).code).toBe(0);
  const sign = ['--sign-key', join(tmp.path, 'signer.key'), '-q'];
  const gen1 = await airlock(['bundle', 'create', ...GEN1.map((n) => `oci:${corpus.dir}:${n}`), '-o', bundlePath('gen1.tar.zst'), ...sign]);
  expect(gen1.code, gen1.stderr).toBe(0);
  const delta = await airlock(['bundle', 'create', `oci:${corpus.dir}`, '-o', bundlePath('delta.tar.zst'), '--since', bundlePath('gen1.tar.zst'), ...sign]);
  expect(delta.code, delta.stderr).toBe(0);
  const bigBundle = await airlock(['bundle', 'create', `oci:${big.dir}`, '-o', bundlePath('big.tar.zst'), ...sign]);
  expect(bigBundle.code, bigBundle.stderr).toBe(0);
});

afterAll(async () => {
  await lb?.close();
  await Promise.all((replicas ?? []).map((r) => r.stop()));
  await tmp?.remove();
});

describe('import into replicas behind a round-robin balancer', () => {
  it('imports a bundle: every digest lands, upload sessions hopped between replicas', async () => {
    const from = lb.log.length;
    const first = await importBundle('gen1.tar.zst');
    expect(first.blobs.uploaded).toBeGreaterThan(0);
    await expectLanded(GEN1, 'm');
    expect(new Set(lb.log.slice(from).map((e) => e.backend)).size).toBe(2);
    expect(hoppedSessions(from)).toBeGreaterThan(0);
  });

  it('a rerun is a no-op', async () => {
    const from = lb.log.length;
    const again = await importBundle('gen1.tar.zst');
    expect(again.blobs).toMatchObject({ uploaded: 0, mounted: 0 });
    // Only the import's own record (m/airlock/import-state) is written again.
    expect(lb.log.slice(from).filter((e) => (e.method === 'POST' || e.method === 'PATCH') && !e.url.includes('/airlock/import-state/'))).toEqual([]);
    await expectLanded(GEN1, 'm');
  });

  it('a delta import on top lands the whole corpus', async () => {
    const r = await importBundle('delta.tar.zst');
    expect(r.blobs.uploaded).toBeGreaterThan(0);
    await expectLanded(
      [...digests.keys()].filter((n) => n !== BIG),
      'm',
    );
  });

  it('chunked uploads (PATCH after PATCH on alternating replicas) land a 9 MiB layer', async () => {
    const from = lb.log.length;
    await importBundle('big.tar.zst', ['--chunk-size', '1']);
    await expectLanded([BIG], 'm');
    const patches = lb.log.slice(from).filter((e) => e.method === 'PATCH');
    expect(patches.length).toBeGreaterThanOrEqual(4);
    expect(new Set(patches.map((e) => e.backend)).size).toBe(2);
    expect(hoppedSessions(from)).toBeGreaterThan(0);
  });

  it('airlock copy into the cluster lands every digest; its rerun copies nothing', async () => {
    const names = [...digests.keys()].filter((n) => n !== BIG);
    const refs = names.map((n) => `oci:${corpus.dir}:${n}`);
    const r = await airlock(['copy', ...refs, `${lb.host}/c`, '--plain-http', '-q']);
    expect(r.code, r.stderr).toBe(0);
    await expectLanded(names, 'c');
    const from = lb.log.length;
    const again = await airlock(['copy', ...refs, `${lb.host}/c`, '--plain-http', '-q']);
    expect(again.code, again.stderr).toBe(0);
    expect(lb.log.slice(from).filter((e) => e.method === 'POST' || e.method === 'PATCH')).toEqual([]);
  });
});
