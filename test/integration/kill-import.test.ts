/**
 * kill -9 of `bundle import` at ten seeded points: the CLI is killed the moment its Nth request
 * reaches the registry (N drawn over every request an uninterrupted import makes: the reachability
 * check, HEADs, uploads, manifests, tags). After each kill no tag of the target points at missing
 * content; a rerun then ends in exactly the state of an uninterrupted import.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { generateKeyPair, loadSigningKey } from '../../src/bundle/keys.js';
import { endpointsFrom } from '../../src/cli/registry-options.js';
import { expandImages } from '../../src/copy/expand.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { createBundle } from '../../src/ops/create.js';
import { importBundle } from '../../src/ops/import.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseImportTarget } from '../../src/names/import-names.js';
import { loadPublicKey } from '../../src/bundle/keys.js';
import { AIRLOCK_BIN } from '../support/cli.js';
import { startRecordingProxy, type RecordingProxy } from '../support/recording-proxy.js';
import { registryState } from '../support/registry-state.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const KILLS = 10;
const SEED = 0x1a7_0c0d;
/** OCI images of the corpus: single-platform manifests sharing a base, and a two-platform index. */
const IMAGES = ['docker.io/library/busybox:musl', 'quay.io/coreos/etcd:v3.3.0', 'quay.io/coreos/etcd:v3.5.0'];

let tmp: TempDir;
let reg: TestRegistry;
let proxy: RecordingProxy;
let bundle: string;
let pub: string;

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
  tmp = await makeTempDir('kill-import');
  const key = await generateKeyPair(join(tmp.path, 'signer'));
  pub = key.publicKeyFile;
  const [corpus] = await Promise.all([writeCorpus(join(tmp.path, 'corpus')), startRegistry().then((r) => (reg = r))]);
  bundle = join(tmp.path, 'bundle.tar.zst');
  const endpoints = await endpointsFrom({});
  try {
    const images = await expandImages(imageListFromRefs(IMAGES.map((n) => `oci:${corpus.dir}:${n}`)).entries, endpoints);
    await createBundle({ images, output: bundle, signingKey: await loadSigningKey(join(tmp.path, 'signer.key')) });
  } finally {
    await endpoints.close();
  }
  proxy = await startRecordingProxy(reg.host);
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
  await tmp?.remove();
});

const importArgs = (prefix: string): string[] => ['bundle', 'import', bundle, '--to', `${proxy.host}/${prefix}`, '--plain-http', '--trust', pub, '-q'];

/** Run an import and SIGKILL it as its `n`th request arrives at the proxy. */
function killAtRequest(prefix: string, n: number): Promise<{ killed: boolean; code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [AIRLOCK_BIN, ...importArgs(prefix)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let killed = false;
    const base = proxy.requests.length;
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    proxy.onRequest = (_req, count) => {
      if (!killed && count - base === n) {
        killed = true;
        child.kill('SIGKILL');
      }
    };
    child.once('error', reject);
    child.once('close', (code) => {
      proxy.onRequest = undefined;
      resolve({ killed, code, stderr });
    });
  });
}

/** The same import as the CLI's, in this process (the reruns: a process start each is slow on a loaded box). */
async function importHere(prefix: string): Promise<void> {
  const target = parseImportTarget(`${proxy.host}/${prefix}`);
  if (target.kind !== 'registry') throw new Error('not a registry target');
  const sink = new RegistryClient(target.host, { plainHttp: true, userAgent: 'airlock-test', authFiles: [] });
  try {
    await importBundle({ path: bundle, target, sink, trusted: [await loadPublicKey(pub)] });
  } finally {
    await sink.close();
  }
}

describe('bundle import killed with -9', () => {
  it(`never leaves a tag on missing content, and a rerun converges, at ${KILLS} seeded points`, async () => {
    // The reference: one uninterrupted import, and how many requests it takes.
    const before = proxy.requests.length;
    await importHere('ref');
    const requests = proxy.requests.length - before;
    const want = await registryState(reg, 'ref');
    expect(want.incomplete).toEqual([]);
    expect(want.tags.size).toBe(IMAGES.length);

    const random = prng(SEED);
    const points = Array.from({ length: KILLS }, () => 1 + Math.floor(random() * requests));
    for (const [i, n] of points.entries()) {
      const prefix = `kill${i}`;
      const run = await killAtRequest(prefix, n);
      expect(run.killed, `request ${n} of ${requests} never came: ${run.stderr}`).toBe(true);
      // Requests the killed process had sent still reach the registry: look once they are done.
      await proxy.settled();
      const after = await registryState(reg, prefix);
      expect({ n, incomplete: after.incomplete }).toEqual({ n, incomplete: [] });
      for (const [name, digest] of after.tags) expect({ n, name, digest }).toEqual({ n, name, digest: want.tags.get(name) });

      await importHere(prefix);
      const done = await registryState(reg, prefix);
      expect({ n, incomplete: done.incomplete }).toEqual({ n, incomplete: [] });
      expect({ n, tags: [...done.tags].sort() }).toEqual({ n, tags: [...want.tags].sort() });
    }
  }, 240_000);
});
