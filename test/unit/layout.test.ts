import { readdir, readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/digest/digest.js';
import { isAirlockError } from '../../src/errors.js';
import { Layout } from '../../src/layout/layout.js';
import { parseManifest } from '../../src/oci/manifest.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

let tmp: TempDir;
let layout: Layout;
beforeEach(async () => {
  tmp = await makeTempDir('layout');
  layout = new Layout(`${tmp.path}/l`);
  await layout.init();
});
afterEach(() => tmp.remove());

const blob = Buffer.alloc(3 << 20, 'a');
const desc = { mediaType: 'application/octet-stream', digest: sha256Digest(blob), size: blob.length };
const chunks = (b: Buffer) => Readable.from([b.subarray(0, 1 << 20), b.subarray(1 << 20)]);

describe('Layout as a sink', () => {
  it('stores a verified blob atomically and reports it present', async () => {
    await layout.putBlob('', desc, chunks(blob));
    expect(await layout.hasBlob('', desc)).toBe(true);
    expect((await readFile(`${layout.dir}/blobs/sha256/${desc.digest.slice(7)}`)).equals(blob)).toBe(true);
    expect((await readdir(`${layout.dir}/blobs/sha256`)).length).toBe(1);
  });

  it('stores nothing and leaves no temp file when the content is wrong', async () => {
    const bad = Buffer.from(blob);
    bad[100] = 0x62;
    const err = await layout.putBlob('', desc, chunks(bad)).catch((e: unknown) => e);
    expect(isAirlockError(err, 'INTEGRITY')).toBe(true);
    expect(await readdir(`${layout.dir}/blobs/sha256`)).toEqual([]);
  });

  it('stores nothing when the source stream fails', async () => {
    const failing = new Readable({
      read() {
        this.push(blob.subarray(0, 1000));
        this.destroy(new Error('connection reset'));
      },
    });
    await expect(layout.putBlob('', desc, failing)).rejects.toThrow(/connection reset/);
    expect(await readdir(`${layout.dir}/blobs/sha256`)).toEqual([]);
  });

  it('tags manifests in index.json and reads them back by name and by digest', async () => {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }));
    const m = parseManifest(bytes, undefined, 'test');
    await layout.putManifest('quay.io/coreos/etcd', m, 'v3.3');
    await layout.putManifest('quay.io/coreos/etcd', m, 'v3.3');
    await layout.putManifest('quay.io/coreos/etcd', m, 'latest');
    const index = JSON.parse(await readFile(`${layout.dir}/index.json`, 'utf8')) as { manifests: unknown[] };
    expect(index.manifests).toHaveLength(2);
    expect((await layout.getManifest('quay.io/coreos/etcd', 'v3.3')).digest).toBe(m.digest);
    expect((await layout.getManifest('', 'quay.io/coreos/etcd:latest')).digest).toBe(m.digest);
    expect((await layout.getManifest('quay.io/coreos/etcd', m.digest)).digest).toBe(m.digest);
    expect(await layout.listTags('quay.io/coreos/etcd')).toEqual(['v3.3', 'latest']);
  });
});

describe('Layout as a source', () => {
  it('opens a blob at an offset (a resumed create continues a partly written blob)', async () => {
    const varied = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));
    const d = { mediaType: 'application/octet-stream', digest: sha256Digest(varied), size: varied.length };
    await layout.putBlob('', d, Readable.from([varied]));
    const read = async (offset?: number): Promise<Buffer> => {
      const parts: Buffer[] = [];
      for await (const c of await layout.openBlob('', d, offset === undefined ? {} : { offset })) parts.push(c as Buffer);
      return Buffer.concat(parts);
    };
    expect((await read()).equals(varied)).toBe(true);
    expect((await read(123_457)).equals(varied.subarray(123_457))).toBe(true);
  });
});

describe('a failed import into a layout', () => {
  it('discard removes a layout init created, and never one that existed', async () => {
    const fresh = new Layout(`${tmp.path}/new/deeper/l`);
    await fresh.init();
    await fresh.discard();
    await expect(readdir(`${tmp.path}/new`)).rejects.toThrow();
    // `layout` (beforeEach) exists: a second Layout on it created nothing, so discards nothing.
    const again = new Layout(layout.dir);
    await again.init();
    await again.discard();
    expect((await readdir(layout.dir)).sort()).toEqual(['blobs', 'oci-layout']);
  });

  it('names every image in one index.json write', async () => {
    const m = (n: number) =>
      parseManifest(
        Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: desc.digest, size: n },
            layers: [],
          }),
        ),
        undefined,
        'm',
      );
    await layout.putTags([
      { repository: 'a/b', manifest: m(1), reference: 'v1' },
      { repository: 'a/c', manifest: m(2), reference: 'v2' },
    ]);
    const index = JSON.parse(await readFile(`${layout.dir}/index.json`, 'utf8')) as { manifests: Array<{ annotations: Record<string, string> }> };
    expect(index.manifests.map((d) => d.annotations['org.opencontainers.image.ref.name'])).toEqual(['a/b:v1', 'a/c:v2']);
  });
});
