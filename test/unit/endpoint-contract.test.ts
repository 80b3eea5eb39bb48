/**
 * The endpoint contract (test/support/endpoint-contract.ts) against the endpoints that need no
 * network: the in-memory registry (the official test double), an OCI layout directory (Source and
 * Sink) and a bundle archive (Source). The registry client runs the same suite against a real
 * registry in test/integration/endpoint-contract.test.ts.
 */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll } from 'vitest';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import { ArchiveSource } from '../../src/bundle/archive-source.js';
import { readHead } from '../../src/bundle/read-head.js';
import { parseBundleManifest } from '../../src/bundle/manifest.js';
import { expandImages } from '../../src/copy/expand.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { Layout } from '../../src/layout/layout.js';
import { createBundle } from '../../src/ops/create.js';
import { readBundleManifests } from '../../src/copy/import-plan.js';
import type { Sink } from '../../src/transport/types.js';
import { fixtureImage, sinkContract, sourceContract, type FixtureImage } from '../support/endpoint-contract.js';
import { MemoryRegistry } from '../support/memory-registry.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

let tmp: TempDir;
let n = 0;
beforeAll(async () => {
  tmp = await makeTempDir('endpoint-contract');
});
afterAll(async () => {
  await tmp?.remove();
});

/** Write `image` into `sink` under `repository:tag`, as the engine would. */
async function put(sink: Sink, repository: string, tag: string, image: FixtureImage): Promise<void> {
  await sink.preparation?.init();
  for (const b of [image.config, image.layer]) await sink.putBlob(repository, b.desc, Readable.from([b.bytes]));
  await sink.putManifest(repository, image.manifest, tag);
}

sourceContract('the in-memory registry', async () => {
  const source = new MemoryRegistry();
  const image = fixtureImage();
  await put(source, 'contract/app', 'v1', image);
  return { source, repository: 'contract/app', tag: 'v1', image, close: async () => undefined };
});
sinkContract('the in-memory registry', async () => ({ sink: new MemoryRegistry(), repository: 'contract/app', close: async () => undefined }));

sourceContract('an OCI layout', async () => {
  const layout = new Layout(join(tmp.path, `source-${n++}`));
  const image = fixtureImage();
  await put(layout, 'contract/app', 'v1', image);
  return { source: layout, repository: 'contract/app', tag: 'v1', image, close: async () => undefined };
});
sinkContract('an OCI layout', async () => ({ sink: new Layout(join(tmp.path, `sink-${n++}`)), repository: 'contract/app', close: async () => undefined }));

sourceContract('a bundle archive', async () => {
  const dir = join(tmp.path, `bundled-${n++}`);
  const image = fixtureImage();
  await put(new Layout(dir), '', 'example.com/contract/app:v1', image);
  const images = await expandImages(imageListFromRefs([`oci:${dir}:example.com/contract/app:v1`]).entries, {
    registry: () => {
      throw new Error('no registry');
    },
    layout: (d) => new Layout(d),
  });
  const path = `${dir}.tar.zst`;
  await createBundle({ images, output: path, unsigned: true });
  const bundle = parseBundleManifest((await readHead(path)).bundleJson, path);
  const reader = await ArchiveReader.open(path);
  const source = new ArchiveSource(reader, bundle, await readBundleManifests(reader, bundle));
  return { source, repository: 'example.com/contract/app', tag: 'v1', image, close: () => reader.close() };
});
