/**
 * Delta bundles made by hand for the import tests, independent of `bundle create --since`: a full
 * bundle's archive rewritten with the blobs its parents delivered moved from `blobs` to `external`
 * (manifests stay carried, as airlock deltas carry every manifest), signed again.
 */
import { buffer } from 'node:stream/consumers';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import type { SigningKey } from '../../src/bundle/keys.js';
import {
  bundleId,
  parseBundleManifest,
  serializeBundleManifest,
  validateBundleManifest,
  type BundleManifest,
  type BundleParent,
} from '../../src/bundle/manifest.js';
import { readHead } from '../../src/bundle/read-head.js';
import { signBundle } from '../../src/bundle/signing.js';
import type { Digest } from '../../src/digest/digest.js';
import { isCompressedMediaType, isManifestMediaType } from '../../src/oci/media-types.js';
import { ArchiveWriter } from '../../src/bundle/archive-writer.js';

/** What a hand-made delta is made against: a parent and the blobs it delivered. */
export interface DeltaParent {
  parent: BundleParent;
  /** Digests the parent holds (a bundle's `blobs`, an inventory's `blobs`). */
  digests: ReadonlySet<string>;
}

/** The parent entry of a bundle file: its id, created time and signer. */
export async function bundleParent(path: string): Promise<{ parent: BundleParent; digests: Set<string>; manifest: BundleManifest }> {
  const head = await readHead(path);
  const manifest = parseBundleManifest(head.bundleJson, path);
  const keyId = head.signature === undefined ? undefined : (JSON.parse(head.signature.toString('utf8')) as { keyId: string }).keyId;
  return {
    parent: { id: bundleId(head.bundleJson), created: manifest.created, kind: 'bundle', ...(keyId === undefined ? {} : { keyId }) },
    digests: new Set(manifest.blobs.map((b) => b.digest)),
    manifest,
  };
}

/**
 * Write `out`: `full` without the non-manifest blobs some parent holds (the first parent that
 * holds one is named for it), listing them as external.
 *
 * @returns the delta's bundle id and manifest
 */
export async function writeDelta(
  full: string,
  out: string,
  parents: readonly DeltaParent[],
  key: SigningKey,
): Promise<{ id: Digest; manifest: BundleManifest }> {
  const head = await readHead(full);
  const m = parseBundleManifest(head.bundleJson, full);
  const from = (digest: string): BundleParent | undefined => parents.find((p) => p.digests.has(digest))?.parent;
  const external = m.blobs.filter((b) => !isManifestMediaType(b.mediaType) && from(b.digest) !== undefined);
  const carried = m.blobs.filter((b) => !external.includes(b));
  const delta: BundleManifest = {
    ...m,
    blobs: carried,
    totals: {
      ...m.totals,
      blobs: carried.length,
      bytes: carried.reduce((n, b) => n + b.size, 0),
      externalBytes: external.reduce((n, b) => n + b.size, 0),
    },
    parents: parents.map((p) => p.parent),
    external: external.map((b) => ({ ...b, bundle: from(b.digest)!.id })),
  };
  const problems = validateBundleManifest(delta);
  if (problems.length > 0) throw new Error(`hand-made delta is invalid: ${problems.join('; ')}`);
  const json = serializeBundleManifest(delta);
  const reader = await ArchiveReader.open(full);
  const writer = await ArchiveWriter.create(out, { mtime: new Date(m.created) });
  try {
    await writer.addBuffer('bundle.json', json, { compress: true });
    await writer.addBuffer('bundle.json.sig', signBundle(json, key).bytes, { compress: true });
    for (const path of ['oci-layout', 'index.json']) await writer.addBuffer(path, await buffer(reader.openEntry(path)), { compress: true });
    for (const b of carried) {
      const path = `blobs/sha256/${b.digest.slice('sha256:'.length)}`;
      await writer.addStream(path, b.size, reader.openEntry(path), { compress: !isCompressedMediaType(b.mediaType) });
    }
    await writer.finish();
  } catch (err) {
    await writer.abort();
    throw err;
  } finally {
    await reader.close();
  }
  return { id: bundleId(json), manifest: delta };
}
