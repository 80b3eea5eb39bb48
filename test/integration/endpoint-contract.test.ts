/**
 * The endpoint contract (test/support/endpoint-contract.ts) against the registry client and a real
 * registry (Debian's docker-registry): the same suite the in-memory registry, the layout and the
 * bundle archive pass in test/unit/endpoint-contract.test.ts.
 */
import { Readable } from 'node:stream';
import { afterAll, beforeAll } from 'vitest';
import { RegistryClient } from '../../src/registry/client.js';
import { fixtureImage, sinkContract, sourceContract } from '../support/endpoint-contract.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';

let registry: TestRegistry;
let n = 0;
beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(async () => {
  await registry?.stop();
});

function client(): RegistryClient {
  return new RegistryClient(registry.host, { plainHttp: true, userAgent: 'airlock-test', certsDirs: [], authFiles: [] });
}

sourceContract('a registry', async () => {
  const c = client();
  const image = fixtureImage();
  const repository = `contract/source-${n++}`;
  for (const b of [image.config, image.layer]) await c.putBlob(repository, b.desc, Readable.from([b.bytes]));
  await c.putManifest(repository, image.manifest, 'v1');
  return { source: c, repository, tag: 'v1', image, close: () => c.close() };
});

sinkContract('a registry', async () => {
  const c = client();
  return { sink: c, repository: `contract/sink-${n++}`, close: () => c.close() };
});
