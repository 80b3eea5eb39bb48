/**
 * Rollback and replay protection, end to end with the CLI, against the real docker-registry and an
 * `oci:` layout: a newer bundle then an older one (refused, exit 14, naming the tag, both bundles
 * and both dates), a replay of a bundle id over a newer state, an old signed head put at the front
 * of a newer archive that still holds the old blobs, expiry, --allow-downgrade, --allow-expired,
 * reruns, and two importers in different working directories sharing one target.
 *
 * Two generations of one image set: gen1 has `quay.io/rb/app:1` at digest OLD; gen2 moves it to NEW
 * and keeps the old image as `quay.io/rb/app:0`, so gen2's archive holds every blob gen1 needs.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus, type Corpus } from '../../samples/corpus.mjs';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import { ArchiveWriter } from '../../src/bundle/archive-writer.js';
import { generateKeyPair, loadSigningKey, type SigningKey } from '../../src/bundle/keys.js';
import { bundleId, parseBundleManifest, type BundleManifest } from '../../src/bundle/manifest.js';
import { readHead } from '../../src/bundle/read-head.js';
import { expandImages } from '../../src/copy/expand.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { Layout } from '../../src/layout/layout.js';
import { isCompressedMediaType } from '../../src/oci/media-types.js';
import { createBundle, type CreateOptions } from '../../src/ops/create.js';
import { IMPORT_STATE_MEDIA_TYPE, parseImportState, type ImportState } from '../../src/rollback/import-state.js';
import { airlock, type CliResult } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const KiB = 1024;
const APP = 'quay.io/rb/app:1';
const APP0 = 'quay.io/rb/app:0';
const LIB = 'quay.io/rb/lib:1';
const L_OLD = { id: 'rb-app-old', size: 24 * KiB };
const L_NEW = { id: 'rb-app-new', size: 24 * KiB };
const L_LIB = { id: 'rb-lib', size: 16 * KiB };

let work: TempDir;
let reg: TestRegistry;
let key: SigningKey;
let pub: string;
let gen1: Corpus;
let gen2: Corpus;
/** Bundles: gen1 (app:1 → OLD), gen2 (app:1 → NEW, app:0 → OLD), gen1's head over gen2's archive. */
let b1: string;
let b2: string;
let hostile: string;
let m1: BundleManifest;
let m2: BundleManifest;
let id1: string;
let id2: string;
let OLD: string;
let NEW: string;

async function bundle(corpus: Corpus, names: string[], output: string, extra: Partial<CreateOptions> = {}): Promise<BundleManifest> {
  const endpoints = {
    registry: () => {
      throw new Error('no registry');
    },
    layout: (d: string) => new Layout(d),
  };
  const images = await expandImages(imageListFromRefs(names.map((n) => `oci:${corpus.dir}:${n}`)).entries, endpoints);
  await createBundle({ images, output, signingKey: key, ...extra });
  return parseBundleManifest((await readHead(output)).bundleJson, output);
}

/**
 * What an attacker without the key can make: the signed head (bundle.json + bundle.json.sig) of
 * `old`, then every other entry of `newer`, as one valid archive.
 */
async function oldHeadOverNewArchive(old: string, newer: string, out: string): Promise<void> {
  const head = await readHead(old);
  const reader = await ArchiveReader.open(newer);
  const writer = await ArchiveWriter.create(out, { mtime: new Date(parseBundleManifest(head.bundleJson, old).created) });
  try {
    await writer.addBuffer('bundle.json', head.bundleJson, { compress: true });
    await writer.addBuffer('bundle.json.sig', head.signature!, { compress: true });
    const newManifest = parseBundleManifest((await readHead(newer)).bundleJson, newer);
    const types = new Map(newManifest.blobs.map((b) => [`blobs/sha256/${b.digest.slice(7)}`, b.mediaType]));
    for (const e of reader.entries()) {
      if (e.path === 'bundle.json' || e.path === 'bundle.json.sig') continue;
      const compress = !isCompressedMediaType(types.get(e.path) ?? '');
      if (e.size < 1 << 20) await writer.addBuffer(e.path, await buffer(reader.openEntry(e.path)), { compress });
      else await writer.addStream(e.path, e.size, reader.openEntry(e.path), { compress });
    }
    await writer.finish();
  } catch (err) {
    await writer.abort();
    throw err;
  } finally {
    await reader.close();
  }
}

beforeAll(async () => {
  if (!existsSync(join(process.cwd(), 'dist', 'rollback', 'import-rollback.js'))) throw new Error('run npm run build first: these tests run bin/airlock');
  work = await makeTempDir('rollback');
  const pair = await generateKeyPair(join(work.path, 'signer'));
  pub = pair.publicKeyFile;
  key = await loadSigningKey(pair.privateKeyFile);
  [gen1, gen2, reg] = await Promise.all([
    writeCorpus(join(work.path, 'gen1'), {
      images: [
        { name: APP, layers: [L_OLD] },
        { name: LIB, layers: [L_LIB] },
      ],
    }),
    writeCorpus(join(work.path, 'gen2'), {
      images: [
        { name: APP, layers: [L_NEW] },
        { name: APP0, layers: [L_OLD] },
        { name: LIB, layers: [L_LIB] },
      ],
    }),
    startRegistry(),
  ]);
  b1 = join(work.path, 'gen1.tar.zst');
  b2 = join(work.path, 'gen2.tar.zst');
  hostile = join(work.path, 'hostile.tar.zst');
  m1 = await bundle(gen1, [APP, LIB], b1);
  m2 = await bundle(gen2, [APP, APP0, LIB], b2);
  id1 = bundleId((await readHead(b1)).bundleJson);
  id2 = bundleId((await readHead(b2)).bundleJson);
  OLD = gen1.images[0]!.digest;
  NEW = gen2.images[0]!.digest;
  expect(gen2.images[1]!.digest).toBe(OLD);
  expect(m2.sequence!).toBeGreaterThan(m1.sequence!);
  await oldHeadOverNewArchive(b1, b2, hostile);
});
afterAll(async () => {
  await reg?.stop();
  await work?.remove();
});

/** A target to import into: a registry prefix or a layout directory, fresh for each test. */
interface Target {
  to: string;
  args: string[];
  /** The digest `name` is tagged with in the target. */
  tagged(name: string): Promise<string | undefined>;
  /** The import record, read straight from the target. */
  record(): Promise<ImportState | undefined>;
  /** How the CLI names `name` in the target. */
  ref(name: string): string;
}

let targets = 0;

function registryTarget(): Target {
  const prefix = `t${++targets}`;
  const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
  const manifest = async (repo: string, ref: string): Promise<{ digest?: string; body?: Buffer }> => {
    const res = await request(`${reg.url}/v2/${repo}/manifests/${ref}`, { headers: { accept } });
    const body = Buffer.from(await res.body.arrayBuffer());
    return res.statusCode === 200 ? { digest: String(res.headers['docker-content-digest']), body } : {};
  };
  return {
    to: `${reg.host}/${prefix}`,
    args: ['--plain-http'],
    ref: (name) => `${reg.host}/${prefix}/${name}`,
    async tagged(name) {
      const at = name.lastIndexOf(':');
      return (await manifest(`${prefix}/${name.slice(0, at)}`, name.slice(at + 1))).digest;
    },
    async record() {
      const m = await manifest(`${prefix}/airlock/import-state`, 'latest');
      if (m.body === undefined) return undefined;
      const doc = JSON.parse(m.body.toString()) as {
        artifactType: string;
        config: { mediaType: string };
        layers: Array<{ digest: string; mediaType: string }>;
      };
      expect(doc.artifactType).toBe(IMPORT_STATE_MEDIA_TYPE);
      expect(doc.config.mediaType).toBe('application/vnd.oci.empty.v1+json');
      expect(doc.layers.map((l) => l.mediaType)).toEqual([IMPORT_STATE_MEDIA_TYPE]);
      const blob = await request(`${reg.url}/v2/${prefix}/airlock/import-state/blobs/${doc.layers[0]!.digest}`);
      return parseImportState(Buffer.from(await blob.body.arrayBuffer()), 'registry');
    },
  };
}

function layoutTarget(): Target {
  const dir = join(work.path, `layout-${++targets}`);
  return {
    to: `oci:${dir}`,
    args: [],
    ref: (name) => name,
    async tagged(name) {
      if (!existsSync(join(dir, 'index.json'))) return undefined;
      const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
        manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
      };
      return index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === name)?.digest;
    },
    async record() {
      const file = join(dir, 'airlock-state.json');
      return existsSync(file) ? parseImportState(await readFile(file), file) : undefined;
    },
  };
}

function importInto(t: Target, path: string, extra: string[] = [], cwd?: string): Promise<CliResult> {
  return airlock(['bundle', 'import', path, '--to', t.to, '--trust', pub, ...t.args, ...extra], cwd === undefined ? {} : { cwd });
}

function expectRefused(
  run: CliResult,
  reason: string,
): { message: string; details: { reason: string; refused: Array<{ tag: string; current: { bundle: string; digest: string } }> } } {
  expect(run.code, run.stderr).toBe(14);
  const error = (
    JSON.parse(run.stdout) as {
      error: { code: string; message: string; details: { reason: string; refused: Array<{ tag: string; current: { bundle: string; digest: string } }> } };
    }
  ).error;
  expect(error.code).toBe('POLICY');
  expect(error.details.reason).toBe(reason);
  return error;
}

describe.each([
  ['a registry', registryTarget],
  ['an oci: layout', layoutTarget],
])('rollback protection in %s', (_kind, makeTarget) => {
  it('records what set each tag; a rerun passes; an older bundle after a newer one is refused, naming the tag, both bundles and both dates', async () => {
    const t = makeTarget();
    expect((await importInto(t, b1)).code).toBe(0);
    let record = (await t.record())!;
    const app = Object.entries(record.tags).find(([k]) => k.endsWith('quay.io/rb/app:1'))![1];
    expect(app).toMatchObject({ digest: OLD, bundle: id1, signer: key.keyId, sequence: m1.sequence, created: m1.created });
    expect((await importInto(t, b1)).code).toBe(0); // a rerun of the same bundle
    const forward = await importInto(t, b2);
    expect(forward.code, forward.stderr).toBe(0);
    expect(await t.tagged(APP)).toBe(NEW);
    record = (await t.record())!;
    expect(record.bundles.map((b) => b.id)).toEqual([id1, id2]);
    expect((await importInto(t, b2)).code).toBe(0); // a rerun after the move

    // Replay: gen1 was imported here, then gen2 moved app:1.
    const replay = await importInto(t, b1, ['--json']);
    const error = expectRefused(replay, 'replay');
    for (const s of [t.ref(APP), id1, id2, m1.created, m2.created]) expect(error.message).toContain(s);
    expect(error.details.refused.map((r) => r.tag)).toEqual([t.ref(APP)]); // lib:1 did not change: not refused
    expect(await t.tagged(APP)).toBe(NEW);
    const human = await importInto(t, b1);
    expect(human.code).toBe(14);
    expect(human.stderr).toContain(`refusing to replay bundle ${id1}`);
    expect(human.stderr).toContain('--allow-downgrade');
  });

  it('refuses an older bundle never imported there (downgrade), and an old signed head over a newer archive; --allow-downgrade rolls back on purpose', async () => {
    const t = makeTarget();
    expect((await importInto(t, b2)).code).toBe(0);
    const error = expectRefused(await importInto(t, b1, ['--json']), 'downgrade');
    expect(error.message).toContain(
      `refusing to move ${t.ref(APP)} back: bundle ${id1} (sequence ${m1.sequence}, created ${m1.created}) is older than bundle ${id2} (sequence ${m2.sequence}, created ${m2.created})`,
    );

    // The hostile archive: gen1's signed head in front of gen2's entries, which hold gen1's blobs.
    // Refused before the rollback rule is even reached: gen2's entries are not in gen1's signed
    // manifest, and import refuses an archive holding anything unlisted (the downgrade rule itself
    // is what refused gen1 above).
    const attack = await importInto(t, hostile, ['--json']);
    expect(attack.code, attack.stderr).toBe(11);
    const attackError = (JSON.parse(attack.stdout) as { error: { code: string; message: string } }).error;
    expect(attackError.code).toBe('INTEGRITY');
    expect(attackError.message).toContain('is not listed in the signed bundle manifest');
    expect(await t.tagged(APP)).toBe(NEW);
    // A rollback on purpose: told to, import takes the genuine older bundle, and the tag goes back.
    const forced = await importInto(t, b1, ['--allow-downgrade']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toContain('moved anyway because of --allow-downgrade');
    expect(await t.tagged(APP)).toBe(OLD);
    const app = Object.entries((await t.record())!.tags).find(([k]) => k.endsWith('quay.io/rb/app:1'))![1];
    expect(app).toMatchObject({ digest: OLD, bundle: id1 });
    // And forward again.
    expect((await importInto(t, b2)).code).toBe(0);
    expect(await t.tagged(APP)).toBe(NEW);
  });

  it('two importers in different working directories share the record of one target', async () => {
    const t = makeTarget();
    const [one, two] = [join(work.path, `cwd-a-${targets}`), join(work.path, `cwd-b-${targets}`)];
    await mkdir(one);
    await mkdir(two);
    await copyFile(b2, join(one, 'mirror.tar.zst'));
    await copyFile(b1, join(two, 'mirror.tar.zst'));
    expect((await importInto(t, 'mirror.tar.zst', [], one)).code).toBe(0);
    const second = await importInto(t, 'mirror.tar.zst', ['--json'], two);
    expectRefused(second, 'downgrade');
    expect(await t.tagged(APP)).toBe(NEW);
  });
});

describe('expiry', () => {
  it('verify and import refuse an expired bundle (exit 14) unless --allow-expired', async () => {
    const expiring = join(work.path, 'expiring.tar.zst');
    const m = await bundle(gen1, [LIB], expiring, { expiresInMs: 1000 });
    expect(Date.parse(m.expires!) - Date.parse(m.created)).toBe(1000);
    await new Promise((r) => setTimeout(r, 2100));
    const t = registryTarget();
    const verify = await airlock(['bundle', 'verify', expiring, '--trust', pub]);
    expect(verify.code).toBe(14);
    expect(verify.stderr).toContain(`the bundle expired at ${m.expires}`);
    expect((await airlock(['bundle', 'verify', expiring, '--trust', pub, '--allow-expired'])).code).toBe(0);
    const refused = await importInto(t, expiring, ['--json']);
    expectRefused(refused, 'expired');
    expect(refused.stdout).toContain(m.expires!);
    expect(await t.record()).toBeUndefined();
    expect(await t.tagged(LIB)).toBeUndefined();
    const allowed = await importInto(t, expiring, ['--allow-expired']);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(await t.tagged(LIB)).toBe(gen1.images[1]!.digest);
    const inspect = JSON.parse((await airlock(['bundle', 'inspect', expiring, '--json'])).stdout) as { sequence: number; expires: string };
    expect(inspect).toMatchObject({ sequence: m.sequence, expires: m.expires });
  });
});
