/**
 * The contract every endpoint of the copy engine keeps, as one suite run against each of them: the
 * in-memory registry, the OCI layout and the bundle archive in the unit tests, a real registry in
 * the integration tests (test/{unit,integration}/endpoint-contract.test.ts).
 *
 * Source: a manifest by tag and by digest, exactly the bytes that were stored; a blob's exact bytes,
 * from an offset, with `onBytes` counting them; NOT_FOUND for what is not there.
 * Sink: a blob stored is found, and read back whole; a body that fails part-way or content that does
 * not match its digest is refused and leaves nothing readable by digest; a manifest stored by digest
 * and then tagged is found by both. Capabilities, where offered: mounting links a blob across
 * repositories (and declines when the source repository lacks it), atomic naming sets every name
 * at once, preparation's discard removes what init made, the catalog lists what was written.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/digest/digest.js';
import { isAirlockError } from '../../src/errors.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { parseManifest, type RawManifest } from '../../src/oci/manifest.js';
import { MediaType } from '../../src/oci/media-types.js';
import type { Sink, Source } from '../../src/transport/types.js';

/** One small image: a config, a layer of random bytes, and its manifest. */
export interface FixtureImage {
  config: { desc: Descriptor; bytes: Buffer };
  layer: { desc: Descriptor; bytes: Buffer };
  manifest: RawManifest;
}

/** A new image each call: its layer is random, so no two tests share a digest. */
export function fixtureImage(layerBytes = 300 * 1024): FixtureImage {
  const layer = randomBytes(layerBytes);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256Digest(layer)] } }));
  const configDesc: Descriptor = { mediaType: MediaType.OciConfig, digest: sha256Digest(config), size: config.length };
  const layerDesc: Descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256Digest(layer), size: layer.length };
  const doc = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: [layerDesc] };
  const manifest = parseManifest(Buffer.from(JSON.stringify(doc)), MediaType.OciManifest, 'fixture');
  return { config: { desc: configDesc, bytes: config }, layer: { desc: layerDesc, bytes: layer }, manifest };
}

/** A source that holds `image` in `repository` under `tag`. */
export interface SeededSource {
  source: Source;
  repository: string;
  tag: string;
  image: FixtureImage;
  close(): Promise<void>;
}

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return isAirlockError(err) ? err.code : `not an AirlockError: ${String(err)}`;
  }
}

/** The Source half of the contract, for the endpoint `seed` makes. */
export function sourceContract(name: string, seed: () => Promise<SeededSource>): void {
  describe(`${name} as a Source`, () => {
    it('serves a manifest by tag and by digest with exactly the stored bytes', async () => {
      const s = await seed();
      try {
        const byTag = await s.source.getManifest(s.repository, s.tag);
        expect(byTag.digest).toBe(s.image.manifest.digest);
        expect(byTag.bytes.equals(s.image.manifest.bytes)).toBe(true);
        const byDigest = await s.source.getManifest(s.repository, s.image.manifest.digest);
        expect(byDigest.bytes.equals(s.image.manifest.bytes)).toBe(true);
        expect(await s.source.listTags(s.repository)).toContain(s.tag);
      } finally {
        await s.close();
      }
    });

    it('serves a blob whole and from an offset, counting the bytes it hands out', async () => {
      const s = await seed();
      try {
        const { desc, bytes } = s.image.layer;
        let counted = 0;
        const whole = await buffer(await s.source.openBlob(s.repository, desc, { onBytes: (n) => (counted += n) }));
        expect(whole.equals(bytes)).toBe(true);
        expect(counted).toBe(desc.size);
        const offset = 100_000;
        counted = 0;
        const rest = await buffer(await s.source.openBlob(s.repository, desc, { offset, onBytes: (n) => (counted += n) }));
        expect(rest.equals(bytes.subarray(offset))).toBe(true);
        expect(counted).toBe(desc.size - offset);
      } finally {
        await s.close();
      }
    });

    it('answers NOT_FOUND for a manifest or blob it does not hold', async () => {
      const s = await seed();
      try {
        const other = fixtureImage(1000);
        expect(await code(s.source.getManifest(s.repository, 'no-such-tag'))).toBe('NOT_FOUND');
        expect(await code(s.source.getManifest(s.repository, other.manifest.digest))).toBe('NOT_FOUND');
        expect(await code(s.source.openBlob(s.repository, other.layer.desc).then((b) => buffer(b)))).toBe('NOT_FOUND');
      } finally {
        await s.close();
      }
    });
  });
}

/** A fresh, empty sink; `repository` is where the tests write (registries need a valid path). */
export interface FreshSink {
  sink: Sink;
  repository: string;
  close(): Promise<void>;
}

/** A body that yields `bytes` in pieces, then fails instead of ending. */
function failingBody(bytes: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(bytes.subarray(0, Math.floor(bytes.length / 2)));
      } else this.destroy(new Error('the source broke off'));
    },
  });
}

/** The Sink half of the contract, for the endpoint `fresh` makes. */
export function sinkContract(name: string, fresh: () => Promise<FreshSink>): void {
  describe(`${name} as a Sink`, () => {
    it('stores a blob so that it is found and read back whole; a manifest by digest, then by tag', async () => {
      const f = await fresh();
      try {
        const img = fixtureImage();
        await f.sink.preparation?.init();
        expect(await f.sink.hasBlob(f.repository, img.layer.desc)).toBe(false);
        for (const b of [img.layer, img.config]) await f.sink.putBlob(f.repository, b.desc, Readable.from([b.bytes]));
        expect(await f.sink.hasBlob(f.repository, img.layer.desc)).toBe(true);
        await f.sink.putManifest(f.repository, img.manifest, undefined);
        await f.sink.putManifest(f.repository, img.manifest, 'v1');
        const back = f.sink.readBack;
        if (back !== undefined) {
          expect((await buffer(await back.openBlob(f.repository, img.layer.desc))).equals(img.layer.bytes)).toBe(true);
          expect((await back.getManifest(f.repository, 'v1')).digest).toBe(img.manifest.digest);
          expect((await back.getManifest(f.repository, img.manifest.digest)).bytes.equals(img.manifest.bytes)).toBe(true);
        }
        // Storing it again is harmless (a rerun).
        await f.sink.putBlob(f.repository, img.layer.desc, Readable.from([img.layer.bytes]));
        expect(await f.sink.hasBlob(f.repository, img.layer.desc)).toBe(true);
      } finally {
        await f.close();
      }
    });

    it('publishes nothing of a body that fails part-way', async () => {
      const f = await fresh();
      try {
        const img = fixtureImage();
        await f.sink.preparation?.init();
        await expect(f.sink.putBlob(f.repository, img.layer.desc, failingBody(img.layer.bytes))).rejects.toBeDefined();
        expect(await f.sink.hasBlob(f.repository, img.layer.desc)).toBe(false);
      } finally {
        await f.close();
      }
    });

    it('refuses content that does not match its digest (INTEGRITY) and publishes nothing', async () => {
      const f = await fresh();
      try {
        const img = fixtureImage();
        await f.sink.preparation?.init();
        const wrong = Buffer.from(img.layer.bytes);
        wrong[1000] = wrong[1000]! ^ 0xff;
        expect(await code(f.sink.putBlob(f.repository, img.layer.desc, Readable.from([wrong])))).toBe('INTEGRITY');
        expect(await f.sink.hasBlob(f.repository, img.layer.desc)).toBe(false);
      } finally {
        await f.close();
      }
    });

    it('offers only capabilities it keeps (mounting, naming, catalog, preparation)', async () => {
      const f = await fresh();
      try {
        const img = fixtureImage(2000);
        await f.sink.preparation?.init();
        await f.sink.putBlob(f.repository, img.layer.desc, Readable.from([img.layer.bytes]));
        const mounting = f.sink.mounting;
        if (mounting !== undefined) {
          const other = `${f.repository}-mounted`;
          expect(await f.sink.hasBlob(other, img.layer.desc)).toBe(false);
          expect(await mounting.mountBlob(other, img.layer.desc, f.repository)).toBe(true);
          expect(await f.sink.hasBlob(other, img.layer.desc)).toBe(true);
          const absent = fixtureImage(2000).layer.desc;
          expect(await mounting.mountBlob(other, absent, f.repository)).toBe(false);
          expect(await f.sink.hasBlob(other, absent)).toBe(false);
          const search = mounting.searchFor({ prefix: '', known: [] });
          expect(await search.locate(img.layer.desc, [other], f.repository)).toBe(f.repository);
        }
        if (f.sink.catalog !== undefined) {
          expect((await f.sink.catalog.listRepositories()).repositories).toContain(f.repository);
        }
        const naming = f.sink.naming;
        if (naming !== undefined) {
          await f.sink.putBlob(f.repository, img.config.desc, Readable.from([img.config.bytes]));
          await naming.putTags([
            { repository: f.repository, manifest: img.manifest, reference: 'a' },
            { repository: f.repository, manifest: img.manifest, reference: 'b' },
          ]);
          const back = f.sink.readBack!;
          for (const t of ['a', 'b']) expect((await back.getManifest(f.repository, t)).digest).toBe(img.manifest.digest);
        }
      } finally {
        await f.close();
      }
    });
  });
}
