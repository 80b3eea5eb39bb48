/**
 * `bundle inspect`: what a bundle holds, from its head alone (bundle.json and its signature are
 * the first entries), so it works on a partial copy of the first megabytes of an archive.
 * The signature is reported, not checked: that is `verify`'s job. A delta bundle shows its parents
 * and what it carries against what it expects the target to hold.
 */
import { sha256Digest, type Digest } from '../digest/digest.js';
import { readHead } from '../bundle/read-head.js';
import { resolveSplitSet } from '../bundle/split-set.js';
import { bundleContents, parseBundleManifest, type BundleContents, type BundleManifest } from '../bundle/manifest.js';
import { signatureKeyId } from '../bundle/signing.js';

export interface InspectResult {
  bundleId: Digest;
  signed: boolean;
  keyId?: string;
  manifest: BundleManifest;
  /** What it carries, in the words the command prints. */
  contents: BundleContents;
  bundleJson: Buffer;
  /** The exact bytes of bundle.json.sig, when signed. */
  signature?: Buffer;
  /** What `--json` prints. */
  json: Record<string, unknown>;
}

/** `parts`: every part of a split set, given one by one (else `path` may name the set: split-set.ts). */
export async function inspectBundle(path: string, parts?: readonly string[]): Promise<InspectResult> {
  // A first part alone will do (read-head.ts); parts given one by one must make a whole set.
  const head = await readHead(parts === undefined ? path : ((await resolveSplitSet(path, parts)) ?? path));
  const manifest = parseBundleManifest(head.bundleJson, path);
  const bundleId = sha256Digest(head.bundleJson);
  const keyId = head.signature === undefined ? undefined : signatureKeyId(head.signature);
  const contents = bundleContents(manifest.images.length, manifest.blobs);
  return {
    bundleId,
    signed: head.signature !== undefined,
    ...(keyId === undefined ? {} : { keyId }),
    manifest,
    contents,
    bundleJson: head.bundleJson,
    ...(head.signature === undefined ? {} : { signature: head.signature }),
    json: {
      bundleId,
      signed: head.signature !== undefined,
      ...(keyId === undefined ? {} : { keyId, signatureChecked: false }),
      created: manifest.created,
      sequence: manifest.sequence ?? null,
      expires: manifest.expires ?? null,
      creator: manifest.creator,
      images: manifest.images,
      contents,
      ...(manifest.parents === undefined
        ? {}
        : { delta: { parents: manifest.parents, externalBlobs: manifest.external?.length ?? 0, externalBytes: manifest.totals.externalBytes ?? 0 } }),
      totals: { ...manifest.totals, savedBytes: manifest.totals.referencedBytes - manifest.totals.bytes - (manifest.totals.externalBytes ?? 0) },
    },
  };
}
