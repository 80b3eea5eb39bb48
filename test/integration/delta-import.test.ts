/**
 * Delta bundles on the receiving side, against the real docker-registry: a delta whose parent was
 * never imported is refused with the exact missing list and nothing written; full-then-delta gives
 * exactly the registry (and OCI layout) content of one full bundle of the later generation, checked
 * with skopeo and the registry's storage directory; `airlock inventory` lists every blob the
 * registry stores, signed when asked; a delta made from an inventory, imported where it is stale,
 * names the inventory. Deltas are made by `createBundle({ since })`, as `bundle create --since` does.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus, type Corpus } from '../../samples/corpus.mjs';
import { generateKeyPair, loadPublicKey, loadSigningKey, type SigningKey, type TrustedKey } from '../../src/bundle/keys.js';
import { parseBundleManifest, type BundleManifest } from '../../src/bundle/manifest.js';
import { readHead } from '../../src/bundle/read-head.js';
import { expandImages } from '../../src/copy/expand.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { parseInventory } from '../../src/inventory/format.js';
import { Layout } from '../../src/layout/layout.js';
import { isManifestMediaType } from '../../src/oci/media-types.js';
import { importBundle, type ImportResult } from '../../src/ops/import.js';
import { parseImportTarget } from '../../src/names/import-names.js';
import { createBundle } from '../../src/ops/create.js';
import { RegistryClient } from '../../src/registry/client.js';
import { airlock } from '../support/cli.js';
import { bundleParent } from '../support/delta.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { skopeoInspectRaw } from '../support/skopeo.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const KiB = 1024;
const BASE = { id: 'd-base', size: 64 * KiB };
const BASE_ARM = { id: 'd-base-arm', size: 48 * KiB };
const GONE = { id: 'd-gone', size: 32 * KiB };
const AMD64 = { os: 'linux', architecture: 'amd64' };
const ARM64 = { os: 'linux', architecture: 'arm64' };
const GEN1 = ['quay.io/coreos/etcd:v3.3.0', 'quay.io/old/gone:1', 'docker.io/library/alpine:3.18'];
const GEN2 = ['quay.io/coreos/etcd:v3.3.0', 'quay.io/coreos/etcd:v3.5.0', 'quay.io/new/app:1', 'docker.io/library/alpine:3.18'];
const PLAIN = { tlsVerify: false };

let work: TempDir;
let corpus: Corpus;
let chain: TestRegistry;
let whole: TestRegistry;
let key: SigningKey;
let keyFile: string;
let pub: string;
let trusted: TrustedKey[];
let full1: string;
let full2: string;
let delta: string;
let parent1: Awaited<ReturnType<typeof bundleParent>>;
let deltaManifest: BundleManifest;

/** A bundle of `names` from the corpus layout; with `since`, a delta (bundle create --since). */
async function bundle(names: string[], output: string, since?: string[]): Promise<BundleManifest> {
  const endpoints = {
    registry: () => {
      throw new Error('no registry');
    },
    layout: (d: string) => new Layout(d),
  };
  const images = await expandImages(imageListFromRefs(names.map((n) => `oci:${corpus.dir}:${n}`)).entries, endpoints);
  await createBundle({ images, output, signingKey: key, ...(since === undefined ? {} : { since, inventoryTrust: trusted }) });
  return parseBundleManifest((await readHead(output)).bundleJson, output);
}

async function importInto(reg: TestRegistry, path: string, prefix = 'm'): Promise<ImportResult> {
  const sink = new RegistryClient(reg.host, { plainHttp: true, userAgent: 'airlock-test', authFiles: [] });
  try {
    return await importBundle({ path, target: parseImportTarget(`${reg.host}/${prefix}`), sink, trusted });
  } finally {
    await sink.close();
  }
}

const v2 = (reg: TestRegistry): string => join(reg.root, 'docker', 'registry', 'v2');

/** Every file under `dir`, relative, sorted; [] when it does not exist. */
async function files(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const all = await readdir(dir, { recursive: true, withFileTypes: true });
  return all
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

/** What a repository holds, from the storage directory: blob links, manifest revisions, tags → digest. */
async function repositoryContent(reg: TestRegistry, repository: string): Promise<Record<string, string[]>> {
  const dir = join(v2(reg), 'repositories', repository);
  const links = async (sub: string): Promise<string[]> => (await files(join(dir, sub))).filter((f) => f.endsWith('/link')).map((f) => f.split('/')[0]!);
  const tags: string[] = [];
  for (const f of (await files(join(dir, '_manifests', 'tags'))).filter((f) => f.endsWith('current/link'))) {
    tags.push(`${f.split('/')[0]} ${await readFile(join(dir, '_manifests', 'tags', f), 'utf8')}`);
  }
  return { layers: await links('_layers/sha256'), manifests: await links('_manifests/revisions/sha256'), tags };
}

/**
 * Every blob the registry stores, with its size, from `blobs/sha256/XX/HEX/data`, but for the
 * blobs of airlock's import record (`m/airlock/import-state`, one per import: bookkeeping, not content).
 */
async function storedBlobs(reg: TestRegistry): Promise<Map<string, number>> {
  const dir = join(v2(reg), 'blobs', 'sha256');
  const { layers = [], manifests = [] } = await repositoryContent(reg, 'm/airlock/import-state');
  const record = new Set([...layers, ...manifests]);
  const out = new Map<string, number>();
  for (const f of (await files(dir)).filter((f) => f.endsWith('/data'))) {
    if (!record.has(f.split('/')[1]!)) out.set(`sha256:${f.split('/')[1]}`, (await stat(join(dir, f))).size);
  }
  return out;
}

async function catalog(reg: TestRegistry): Promise<string[]> {
  const res = await request(`${reg.url}/v2/_catalog?n=1000`);
  return ((await res.body.json()) as { repositories: string[] }).repositories.sort();
}

const repoOf = (name: string): string => `m/${name.slice(0, name.lastIndexOf(':'))}`;

beforeAll(async () => {
  if (!existsSync(join(process.cwd(), 'dist', 'cli', 'commands', 'inventory.js'))) throw new Error('run npm run build first: these tests run bin/airlock');
  work = await makeTempDir('delta-import');
  const pair = await generateKeyPair(join(work.path, 'signer'));
  keyFile = pair.privateKeyFile;
  pub = pair.publicKeyFile;
  key = await loadSigningKey(keyFile);
  trusted = [await loadPublicKey(pub)];
  [corpus, chain, whole] = await Promise.all([
    writeCorpus(join(work.path, 'corpus'), {
      images: [
        { name: GEN1[0]!, layers: [BASE, { id: 'd-etcd330', size: 48 * KiB }] },
        { name: GEN1[1]!, layers: [GONE] },
        {
          name: GEN1[2]!,
          format: 'docker',
          platforms: [
            { platform: AMD64, layers: [BASE] },
            { platform: ARM64, layers: [BASE_ARM] },
          ],
        },
        {
          name: GEN2[1]!,
          platforms: [
            { platform: AMD64, layers: [BASE, { id: 'd-etcd350', size: 48 * KiB }] },
            { platform: ARM64, layers: [BASE_ARM, { id: 'd-etcd350-arm', size: 48 * KiB }] },
          ],
        },
        { name: GEN2[2]!, layers: [GONE, { id: 'd-app', size: 32 * KiB }] },
      ],
    }),
    startRegistry(),
    startRegistry(),
  ]);
  full1 = join(work.path, 'gen1.tar.zst');
  full2 = join(work.path, 'gen2.tar.zst');
  delta = join(work.path, 'gen2-delta.tar.zst');
  await Promise.all([bundle(GEN1, full1), bundle(GEN2, full2)]);
  parent1 = await bundleParent(full1);
  deltaManifest = await bundle(GEN2, delta, [full1]);
  expect(deltaManifest.parents).toEqual([parent1.parent]);
});
afterAll(async () => {
  await Promise.all([chain?.stop(), whole?.stop()]);
  await work?.remove();
});

describe('bundle import of a delta into a registry', () => {
  it('refuses a delta whose parent was never imported: the exact missing list, nothing written', async () => {
    const run = await airlock(['bundle', 'import', delta, '--to', `${chain.host}/m`, '--plain-http', '--trust', pub, '--json']);
    expect(run.code, run.stderr).toBe(4);
    const error = (JSON.parse(run.stdout) as { error: { code: string; details: { missing: Array<{ digest: string; size: number; parent: string }> } } }).error;
    expect(error.code).toBe('NOT_FOUND');
    const external = deltaManifest.external!;
    expect(error.details.missing.map((m) => `${m.digest} ${m.size} ${m.parent}`).sort()).toEqual(
      external.map((e) => `${e.digest} ${e.size} ${e.bundle}`).sort(),
    );
    expect(run.stderr).toContain(`airlock: error: ${delta} is a delta bundle; ${chain.host}/m lacks ${external.length} blobs it does not carry: `);
    for (const e of external) {
      expect(run.stderr).toMatch(
        new RegExp(`  - blob ${e.digest} \\(${e.size} bytes, needed by [^)]+\\) is carried by bundle ${parent1.parent.id}, not imported here\\n`),
      );
    }
    expect(run.stderr).toContain(
      `  hint: import bundle ${parent1.parent.id} (created ${parent1.parent.created}, signed by key ${trusted[0]!.keyId}) into ${chain.host}/m first, then this one again. Nothing was written\n`,
    );
    expect(existsSync(join(v2(chain), 'repositories'))).toBe(false);
    expect(existsSync(join(v2(chain), 'blobs'))).toBe(false);
    expect(await catalog(chain)).toEqual([]);
  });

  it('full then delta gives exactly the content of one full bundle of the later generation', async () => {
    await importInto(chain, full1);
    const result = await importInto(chain, delta);
    const gone = corpus.images.find((i) => i.name === 'quay.io/new/app:1')!.blobs[1]!.digest;
    expect(result.transfers).toContainEqual({ digest: gone, size: expect.any(Number), repository: 'm/quay.io/new/app', action: 'mounted' });
    const external = new Set<string>(deltaManifest.external!.map((e) => e.digest));
    expect(result.transfers.filter((t) => t.action === 'uploaded' && external.has(t.digest))).toEqual([]);
    await importInto(whole, full2);

    for (const name of GEN2) {
      const want = corpus.images.find((i) => i.name === name)!;
      const [a, b] = await Promise.all([
        skopeoInspectRaw(`docker://${chain.host}/m/${name}`, PLAIN),
        skopeoInspectRaw(`docker://${whole.host}/m/${name}`, PLAIN),
      ]);
      expect([a.digest, b.digest], name).toEqual([want.digest, want.digest]);
      for (const child of want.children) {
        const ref = `${repoOf(name)}@${child.digest}`;
        const [c, d] = await Promise.all([skopeoInspectRaw(`docker://${chain.host}/${ref}`, PLAIN), skopeoInspectRaw(`docker://${whole.host}/${ref}`, PLAIN)]);
        expect([c.digest, d.digest], ref).toEqual([child.digest, child.digest]);
      }
    }
    for (const repository of new Set(GEN2.map(repoOf))) {
      expect(await repositoryContent(chain, repository), repository).toEqual(await repositoryContent(whole, repository));
    }
    // Beyond that, the chain holds only what generation 1 alone had (and each its import record).
    expect(await catalog(chain)).toEqual([...new Set([...GEN1, ...GEN2].map(repoOf)), 'm/airlock/import-state'].sort());
    expect(await catalog(whole)).toEqual([...new Set(GEN2.map(repoOf)), 'm/airlock/import-state'].sort());
    const gen1Only = corpus.images.find((i) => i.name === 'quay.io/old/gone:1')!;
    const inWhole = await storedBlobs(whole);
    const extra = [...(await storedBlobs(chain)).keys()].filter((d) => !inWhole.has(d));
    expect(extra.sort()).toEqual([gen1Only.digest, gen1Only.blobs[0]!.digest].sort());
  });

  it('airlock inventory lists every blob the registry stores, and a signed one verifies', async () => {
    const run = await airlock(['inventory', '--registry', `${chain.host}/m`, '--plain-http', '-q']);
    expect(run.code, run.stderr).toBe(0);
    const inventory = parseInventory(Buffer.from(run.stdout), 'stdout');
    expect(inventory.signed).toBe(false);
    const stored = await storedBlobs(chain);
    expect(new Map(inventory.payload.blobs.map((b) => [b.digest, b.size]))).toEqual(stored);
    expect(inventory.payload.images.map((i) => i.name)).toEqual([...new Set([...GEN1, ...GEN2])].map((n) => `${chain.host}/m/${n}`).sort());

    const out = join(work.path, 'have.json');
    const signed = await airlock(['inventory', '--registry', `${chain.host}/m`, '--plain-http', '--sign-key', keyFile, '-o', out, '--json']);
    expect(signed.code, signed.stderr).toBe(0);
    const checked = parseInventory(await readFile(out), out, trusted);
    expect(checked.keyId).toBe(trusted[0]!.keyId);
    expect(checked.payload.blobs).toEqual(inventory.payload.blobs);
    expect((JSON.parse(signed.stdout) as { id: string }).id).toBe(checked.id);
    const again = await airlock(['inventory', '--registry', `${chain.host}/m`, '--plain-http', '-o', out]);
    expect(again.code).toBe(2);

    // A delta made from it imports where it was taken, and names it as stale elsewhere.
    const fromInventory = join(work.path, 'from-inventory.tar.zst');
    const made = await bundle(GEN2, fromInventory, [out]);
    expect(made.parents).toEqual([{ id: checked.id, created: checked.payload.created, kind: 'inventory', keyId: checked.keyId }]);
    expect(made.blobs.filter((b) => !isManifestMediaType(b.mediaType))).toEqual([]); // the target holds every config and layer
    const ok = await airlock(['bundle', 'import', fromInventory, '--to', `${chain.host}/m`, '--plain-http', '--trust', pub]);
    expect(ok.code, ok.stderr).toBe(0);
    const stale = await airlock(['bundle', 'import', fromInventory, '--to', `${chain.host}/elsewhere`, '--plain-http', '--trust', pub]);
    expect(stale.code).toBe(4);
    expect(stale.stderr).toContain(`the inventory ${checked.id} is stale: the target no longer holds blob `);
    expect(stale.stderr).toContain(`make a new one (airlock inventory --registry ${chain.host}/elsewhere > have.json)`);
    expect(existsSync(join(v2(chain), 'repositories', 'elsewhere'))).toBe(false);
  });
});

describe('bundle import of a delta into an OCI layout', () => {
  it('is refused before the parent, and full then delta equals the full bundle', async () => {
    const dir = join(work.path, 'chain-layout');
    const into = (path: string, d = dir) => importBundle({ path, target: parseImportTarget(`oci:${d}`), sink: new Layout(d), trusted });
    const refused = await airlock(['bundle', 'import', delta, '--to', `oci:${dir}`, '--trust', pub]);
    expect(refused.code, refused.stderr).toBe(4);
    expect(refused.stderr).toContain(`oci:${dir} lacks ${deltaManifest.external!.length} blobs it does not carry`);
    expect(existsSync(dir)).toBe(false);

    await into(full1);
    await into(delta);
    const wholeDir = join(work.path, 'whole-layout');
    await into(full2, wholeDir);
    type Index = { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    const names = async (d: string) =>
      new Map(
        (JSON.parse(await readFile(join(d, 'index.json'), 'utf8')) as Index).manifests.map((m) => [
          m.annotations['org.opencontainers.image.ref.name'],
          m.digest,
        ]),
      );
    const [a, b] = await Promise.all([names(dir), names(wholeDir)]);
    for (const name of GEN2) expect(a.get(name), name).toBe(b.get(name));
    expect([...a.keys()].sort()).toEqual([...new Set([...GEN1, ...GEN2])].sort());
    const gen1Only = corpus.images.find((i) => i.name === 'quay.io/old/gone:1')!;
    const extra = (await files(join(dir, 'blobs'))).filter((f) => !existsSync(join(wholeDir, 'blobs', f)));
    expect(extra.sort()).toEqual([gen1Only.digest, gen1Only.blobs[0]!.digest].map((d) => `sha256/${d.slice(7)}`).sort());

    const inv = await airlock(['inventory', '--layout', dir, '-q']);
    expect(inv.code, inv.stderr).toBe(0);
    const listed = parseInventory(Buffer.from(inv.stdout), 'stdout')
      .payload.blobs.map((x) => `sha256/${x.digest.slice(7)}`)
      .sort();
    expect(listed).toEqual((await files(join(dir, 'blobs'))).sort());
  });
});
