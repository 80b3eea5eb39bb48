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
