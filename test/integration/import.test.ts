/**
 * `bundle import` against the real docker-registry: round trips (plain HTTP, TLS + Basic, Bearer
 * tokens, an OCI layout), checked with skopeo, and every way an import must refuse or recover:
 * tampered archive, untrusted key, --strip-host collision, policy refusal, kill -9 midway.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, open, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus, type Corpus } from '../../samples/corpus.mjs';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import { generateKeyPair, loadPublicKey, loadSigningKey, type TrustedKey } from '../../src/bundle/keys.js';
import { expandImages } from '../../src/copy/expand.js';
import { endpointsFrom } from '../../src/cli/registry-options.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { Layout } from '../../src/layout/layout.js';
import { importBundle, type ImportResult } from '../../src/ops/import.js';
import { parseImportTarget } from '../../src/names/import-names.js';
import { createBundle } from '../../src/ops/create.js';
import { RegistryClient } from '../../src/registry/client.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry } from '../support/seed.js';
import { accessFor, skopeoCopy, skopeoInspectRaw } from '../support/skopeo.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';
import { startTokenServer, type TestTokenServer } from '../support/token-server.js';

const CLI = join(process.cwd(), 'bin', 'airlock');
const MiB = 1024 * 1024;
const ALICE = { username: 'alice', password: 'wonder land' };
const PLAIN = { tlsVerify: false };
/** Corpus images carried by the registry-sourced bundle (OCI, OCI index, Docker v2, Docker list). */
const FROM_REGISTRY = [
  'quay.io/coreos/etcd:v3.3.0',
  'quay.io/coreos/etcd:v3.5.0',
  'quay.io/coreos/etcd:v2.3.8',
  'docker.io/library/busybox:musl',
  'docker.io/library/alpine:3.18',
];
/** OCI-typed images for the layout-sourced bundle (skopeo's oci: reader skips Docker types). */
const FROM_LAYOUT = ['quay.io/coreos/etcd:v3.3.0', 'quay.io/coreos/etcd:v3.5.0', 'docker.io/library/busybox:musl'];

let work: TempDir;
let corpus: Corpus;
let source: TestRegistry;
let target: TestRegistry;
let pub: string;
let trusted: TrustedKey[];
/** Bundle from the source registry: names `127.0.0.1:PORT/coreos/etcd:v3.3.0`, one by digest only. */
let fromRegistry: string;
/** Upstream digest of every name in {@link fromRegistry}. */
const upstream = new Map<string, string>();
/** Bundle from the corpus layout: names `quay.io/coreos/etcd:v3.3.0`. */
let fromLayout: string;

function digestOf(name: string): string {
  const image = corpus.images.find((i) => i.name === name);
  if (image === undefined) throw new Error(`${name} is not in the corpus`);
  return image.digest;
}

async function bundleFrom(refs: string[], output: string, registries: { plainHttp?: boolean } = {}): Promise<void> {
  const endpoints = await endpointsFrom(registries);
  try {
    const images = await expandImages(imageListFromRefs(refs).entries, endpoints);
    await createBundle({ images, output, signingKey: await loadSigningKey(join(work.path, 'signer.key')) });
  } finally {
    await endpoints.close();
  }
}

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run `node bin/airlock ARGS`; `onSpawn` may watch (and kill) the process. */
function cli(args: string[], onSpawn?: (child: ReturnType<typeof spawn>) => void): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    onSpawn?.(child);
  });
}

function repositoriesDir(reg: TestRegistry, prefix: string): string {
  return join(reg.root, 'docker', 'registry', 'v2', 'repositories', prefix);
}

/** Repositories holding manifests under `prefix` (read from the registry's storage directory). */
async function storedRepositories(reg: TestRegistry, prefix: string): Promise<string[]> {
  const dir = repositoriesDir(reg, prefix);
  if (!existsSync(dir)) return [];
  const found = await readdir(dir, { recursive: true });
  return found.filter((p) => p.endsWith('_manifests'));
}

/** Every imported image answers skopeo with exactly its upstream digest. */
async function expectLanded(result: ImportResult, access: Parameters<typeof skopeoInspectRaw>[1], want: (name: string) => string): Promise<void> {
  for (const image of result.images) {
    expect(image.digest).toBe(want(image.name));
    expect((await skopeoInspectRaw(`docker://${image.reference}`, access)).digest, image.reference).toBe(want(image.name));
  }
}

beforeAll(async () => {
  if (!existsSync(join(process.cwd(), 'dist', 'cli', 'commands', 'import.js'))) throw new Error('run npm run build first: these tests run bin/airlock');
  work = await makeTempDir('import');
  const key = await generateKeyPair(join(work.path, 'signer'));
  pub = key.publicKeyFile;
  trusted = [await loadPublicKey(pub)];
  [corpus, source, target] = await Promise.all([writeCorpus(join(work.path, 'corpus')), startRegistry(), startRegistry()]);
  const seeded = await seedRegistry(source, corpus.dir, FROM_REGISTRY);
  const refs = [...seeded.values()].map((s) => s.ref);
  const pinned = `${source.host}/coreos/etcd@${digestOf('quay.io/coreos/etcd:v3.4.1')}`;
  await seedRegistry(source, corpus.dir, ['quay.io/coreos/etcd:v3.4.1']);
  for (const s of seeded.values()) upstream.set(s.ref, s.digest);
  upstream.set(pinned, digestOf('quay.io/coreos/etcd:v3.4.1'));
  fromRegistry = join(work.path, 'from-registry.tar.zst');
  fromLayout = join(work.path, 'from-layout.tar.zst');
  await bundleFrom([...refs, pinned], fromRegistry, { plainHttp: true });
  await bundleFrom(
    FROM_LAYOUT.map((n) => `oci:${corpus.dir}:${n}`),
    fromLayout,
  );
});
afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop()]);
  await work?.remove();
});

describe('bundle import into a registry', () => {
  let first: ImportResult;

  it('lands every image under HOST/PREFIX/<upstream host>/… with its upstream digest', async () => {
    const sink = new RegistryClient(target.host, { plainHttp: true, userAgent: 'airlock-test', authFiles: [] });
    try {
      first = await importBundle({ path: fromRegistry, target: parseImportTarget(`${target.host}/plain`), sink, trusted });
    } finally {
      await sink.close();
    }
    const port = source.host.split(':')[1];
    expect(first.images.map((i) => i.reference)).toContain(`${target.host}/plain/127.0.0.1_${port}/coreos/etcd:v3.3.0`);
    expect(first.images.find((i) => !i.tagged)?.reference).toBe(`${target.host}/plain/127.0.0.1_${port}/coreos/etcd@${digestOf('quay.io/coreos/etcd:v3.4.1')}`);
    await expectLanded(first, PLAIN, (name) => upstream.get(name)!);
    // The amd64 base layer is shared by coreos/etcd and library/alpine: uploaded once, mounted once.
    expect(first.blobs.mounted).toBeGreaterThan(0);
    expect(first.blobs.uploaded).toBe(first.blobs.distinct);
    const etcd = first.images.find((i) => i.reference.endsWith('/coreos/etcd:v3.5.0'))!;
    await skopeoCopy(`docker://${etcd.reference}`, `oci:${join(work.path, 'skopeo-copy')}:etcd`, { src: PLAIN, preserveDigests: true, all: true });
  });

  it('a rerun uploads nothing and ends in the same state', async () => {
    const run = await cli(['bundle', 'import', fromRegistry, '--to', `${target.host}/plain`, '--plain-http', '--trust', pub, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const again = JSON.parse(run.stdout) as ImportResult;
    expect(again.blobs).toMatchObject({ uploaded: 0, mounted: 0, uploadedBytes: 0, present: first.blobs.uploaded + first.blobs.mounted });
    expect(again.images).toEqual(first.images);
  });

  it('pushes through TLS + Basic auth with the CLI, printing the mapping table', async () => {
    const reg = await startRegistry({ tls: true, basicAuth: ALICE });
    try {
      const run = await cli([
        'bundle',
        'import',
        fromLayout,
        '--to',
        `${reg.host}/tls`,
        '--trust',
        pub,
        '--creds',
        `${ALICE.username}:${ALICE.password}`,
        '--ca-file',
        reg.caFile!,
      ]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(
        // Digests are cut to 12 hex digits in the table (--wide shows them whole).
        new RegExp(
          `quay\\.io/coreos/etcd:v3\\.3\\.0 +${reg.host}/tls/quay\\.io/coreos/etcd:v3\\.3\\.0 +${digestOf('quay.io/coreos/etcd:v3.3.0').slice(0, 'sha256:'.length + 12)}$`,
          'm',
        ),
      );
      for (const name of FROM_LAYOUT) {
        expect((await skopeoInspectRaw(`docker://${reg.host}/tls/${name}`, accessFor(reg))).digest).toBe(digestOf(name));
      }
    } finally {
      await reg.stop();
    }
  });

  it('pushes to a Bearer-token registry', async () => {
    let tokens: TestTokenServer | undefined;
    let reg: TestRegistry | undefined;
    const sinkFor = (r: TestRegistry): RegistryClient =>
      new RegistryClient(r.host, { userAgent: 'airlock-test', caFiles: [r.caFile!], credentials: ALICE, authFiles: [], certsDirs: [] });
    try {
      tokens = await startTokenServer({ users: [{ ...ALICE, access: () => ['pull', 'push'] }] });
      reg = await startRegistry({ tls: true, tokenAuth: { ...tokens.auth, ...ALICE } });
      const sink = sinkFor(reg);
      try {
        const result = await importBundle({ path: fromLayout, target: parseImportTarget(`${reg.host}/tok`), sink, trusted, stripHost: true });
        expect(result.images.map((i) => i.reference)).toContain(`${reg.host}/tok/library/busybox:musl`);
        await expectLanded(result, accessFor(reg), digestOf);
      } finally {
        await sink.close();
      }
    } finally {
      await Promise.all([reg?.stop(), tokens?.stop()]);
    }
  });
});

describe('bundle import refuses and recovers', () => {
  it('a tampered layer imports and tags nothing; the intact bundle then imports', async () => {
    const tampered = join(work.path, 'tampered.tar.zst');
    await copyFile(fromLayout, tampered);
    const layer = corpus.images.find((i) => i.name === 'quay.io/coreos/etcd:v3.3.0')!.blobs.at(-1)!;
    const reader = await ArchiveReader.open(tampered);
    const entry = reader.entry(`blobs/sha256/${layer.digest.slice(7)}`)!;
    await reader.close();
    const fh = await open(tampered, 'r+');
    const at = entry.offset + 4096;
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, at);
    await fh.write(Buffer.from([byte[0]! ^ 0xff]), 0, 1, at);
    await fh.close();

    const run = await cli(['bundle', 'import', tampered, '--to', `${target.host}/tampered`, '--plain-http', '--trust', pub]);
    expect(run.code, run.stderr).toBe(11);
    expect(run.stderr).toContain(layer.digest);
    // The registry refused the content (DIGEST_INVALID); the operator is told it is the bundle's fault.
    expect(run.stderr).toContain('does not match its signed digest');
    expect(run.stderr).toContain('run bundle verify');
    expect(await storedRepositories(target, 'tampered')).toEqual([]);

    const fixed = await cli(['bundle', 'import', fromLayout, '--to', `${target.host}/tampered`, '--plain-http', '--trust', pub, '--json']);
    expect(fixed.code, fixed.stderr).toBe(0);
    await expectLanded(JSON.parse(fixed.stdout) as ImportResult, PLAIN, digestOf);
  });

  it('an untrusted signer is refused before anything is written', async () => {
    const other = await generateKeyPair(join(work.path, 'other'));
    const run = await cli(['bundle', 'import', fromLayout, '--to', `${target.host}/untrusted`, '--plain-http', '--trust', other.publicKeyFile]);
    expect(run.code).toBe(12);
    expect(run.stderr).toMatch(/not trusted/);
    expect(existsSync(repositoriesDir(target, 'untrusted'))).toBe(false);
  });

  it('--strip-host refuses two images that would collide', async () => {
    const dir = join(work.path, 'collide');
    const images = ['quay.io/team/app:1', 'docker.io/team/app:1'];
    await writeCorpus(dir, { images: images.map((name, i) => ({ name, layers: [{ id: `collide-${i}`, size: 1024 }] })) });
    const bundle = join(work.path, 'collide.tar.zst');
    await bundleFrom(
      images.map((n) => `oci:${dir}:${n}`),
      bundle,
    );
    const run = await cli(['bundle', 'import', bundle, '--to', `${target.host}/strip`, '--plain-http', '--trust', pub, '--strip-host']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`images quay.io/team/app:1 and docker.io/team/app:1 would both land as ${target.host}/strip/team/app:1`);
    expect(existsSync(repositoriesDir(target, 'strip'))).toBe(false);
  });

  it('a policy refusal writes nothing', async () => {
    const policy = join(work.path, 'policy.yaml');
    await writeFile(policy, 'version: 1\nregistries:\n  allow: [quay.io]\n');
    const run = await cli(['bundle', 'import', fromLayout, '--to', `${target.host}/policy`, '--plain-http', '--trust', pub, '--policy', policy]);
    expect(run.code).toBe(14);
    expect(run.stderr).toContain('refuses image docker.io/library/busybox:musl: registry docker.io matches no allowed pattern');
    expect(existsSync(repositoriesDir(target, 'policy'))).toBe(false);
  });
});

describe('bundle import interrupted', () => {
  it('after kill -9 midway, a rerun finishes without re-uploading what landed', async () => {
    const dir = join(work.path, 'big');
    const layers = [1, 2, 3].map((n) => ({ id: `big-${n}`, size: 24 * MiB, randomRatio: 1, files: 1 }));
    const big = await writeCorpus(dir, { images: [{ name: 'example.com/big/app:v1', layers }] });
    const bundle = join(work.path, 'big.tar.zst');
    await bundleFrom([`oci:${dir}:example.com/big/app:v1`], bundle);
    const layerDigests = big.images[0]!.blobs.slice(1).map((b) => b.digest);
    const links = join(target.root, 'docker/registry/v2/repositories/kill/example.com/big/app/_layers/sha256');
    const landed = (): string[] => layerDigests.filter((d) => existsSync(join(links, d.slice(7), 'link')));
    const args = ['bundle', 'import', bundle, '--to', `${target.host}/kill`, '--plain-http', '--trust', pub, '--concurrency', '1', '--json'];

    const killed = await cli(args, (child) => {
      const poll = setInterval(() => {
        if (landed().length > 0) {
          clearInterval(poll);
          child.kill('SIGKILL');
        }
      }, 2);
      child.once('close', () => clearInterval(poll));
    });
    expect(killed.signal, `finished before it could be killed: ${killed.stderr}`).toBe('SIGKILL');
    const before = landed();
    expect(before.length).toBeGreaterThan(0);
    expect(before.length).toBeLessThan(layerDigests.length);
    expect(await storedRepositories(target, 'kill')).toEqual([]); // no manifest, so no tag

    const rerun = await cli(args);
    expect(rerun.code, rerun.stderr).toBe(0);
    const result = JSON.parse(rerun.stdout) as ImportResult;
    const uploaded = result.transfers.filter((t) => t.action === 'uploaded').map((t) => t.digest);
    for (const d of before) expect(uploaded).not.toContain(d);
    expect(result.transfers.filter((t) => t.action === 'present').map((t) => t.digest)).toEqual(expect.arrayContaining(before));
    await expectLanded(result, PLAIN, () => big.images[0]!.digest);
  });
});

describe('bundle import into an OCI layout', () => {
  it('writes a layout skopeo reads; a second import is a no-op', async () => {
    const dir = join(work.path, 'imported-layout');
    const run = () => importBundle({ path: fromLayout, target: parseImportTarget(`oci:${dir}`), sink: new Layout(dir), trusted });
    const first = await run();
    expect(first.images.map((i) => i.reference)).toEqual(FROM_LAYOUT);
    const index = await readFile(join(dir, 'index.json'));
    await skopeoCopy(`oci:${dir}:quay.io/coreos/etcd:v3.3.0`, `oci:${join(work.path, 'from-imported')}:etcd`, { preserveDigests: true });
    const again = await run();
    expect(again.blobs).toMatchObject({ uploaded: 0, uploadedBytes: 0, present: first.blobs.distinct });
    expect(await readFile(join(dir, 'index.json'))).toEqual(index);
  }, 20_000);
});
