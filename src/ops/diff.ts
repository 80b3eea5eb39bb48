/**
 * `bundle diff A B`: what changed from bundle A to bundle B, from their heads alone (a whole
 * archive, its first megabytes, or an exported bundle.json): images added, removed, and retagged
 * (the same name now at another digest), and the blobs B's images need that A's did not, with
 * their bytes. A blob counts as A's when A carried it or listed it as external: either way a target
 * that took A holds it. Signatures are not checked (that is `verify`'s job).
 */
import type { Digest } from '../digest/digest.js';
import type { BundleBlob, BundleManifest } from '../bundle/manifest.js';
import { readHeadFile, type HeadFile } from '../copy/since.js';
import { signatureKeyId } from '../bundle/signing.js';

export interface DiffSide {
  path: string;
  bundleId: Digest;
  created: string;
  /** Claimed, not checked. */
  keyId?: string;
  delta: boolean;
}

export interface DiffImage {
  name: string;
  digest: Digest;
}

export interface NewBlob extends BundleBlob {
  /** True when B carries it; false when B lists it as external (a parent of B carries it). */
  carried: boolean;
}

export interface DiffResult {
  a: DiffSide;
  b: DiffSide;
  /** How the two are related through `parents`. */
  relation: 'same' | 'b-builds-on-a' | 'a-builds-on-b' | 'unrelated';
  added: DiffImage[];
  removed: DiffImage[];
  /** Same name, another digest. */
  retagged: Array<{ name: string; from: Digest; to: Digest }>;
  unchanged: number;
  /** Blobs B's images need that A neither carried nor listed as external, in B's order. */
  newBlobs: NewBlob[];
  newBytes: number;
  /** Blobs of A that B's images no longer need. */
  droppedBlobs: number;
  droppedBytes: number;
}

export async function diffBundles(pathA: string, pathB: string): Promise<DiffResult> {
  const a = await readHeadFile(pathA);
  const b = await readHeadFile(pathB);
  return diffManifests(side(a), a.manifest, side(b), b.manifest);
}

/** The diff of two manifests already read (exported for tests). */
export function diffManifests(a: DiffSide, ma: BundleManifest, b: DiffSide, mb: BundleManifest): DiffResult {
  const before = new Map(ma.images.map((i) => [i.name, i.digest]));
  const after = new Map(mb.images.map((i) => [i.name, i.digest]));
  const added: DiffImage[] = [];
  const retagged: DiffResult['retagged'] = [];
  let unchanged = 0;
  for (const [name, digest] of after) {
    const old = before.get(name);
    if (old === undefined) added.push({ name, digest });
    else if (old !== digest) retagged.push({ name, from: old, to: digest });
    else unchanged++;
  }
  const removed = [...before].filter(([name]) => !after.has(name)).map(([name, digest]) => ({ name, digest }));

  const known = (m: BundleManifest): BundleBlob[] => [...m.blobs, ...(m.external ?? [])];
  const inA = new Set(known(ma).map((x) => x.digest));
  const inB = new Set(known(mb).map((x) => x.digest));
  const carriedB = new Set(mb.blobs.map((x) => x.digest));
  const newBlobs = known(mb)
    .filter((x) => !inA.has(x.digest))
    .map((x) => ({ digest: x.digest, size: x.size, mediaType: x.mediaType, carried: carriedB.has(x.digest) }));
  const dropped = known(ma).filter((x) => !inB.has(x.digest));
  return {
    a,
    b,
    relation: relation(a, ma, b, mb),
    added,
    removed,
    retagged,
    unchanged,
    newBlobs,
    newBytes: newBlobs.reduce((n, x) => n + x.size, 0),
    droppedBlobs: dropped.length,
    droppedBytes: dropped.reduce((n, x) => n + x.size, 0),
  };
}

function relation(a: DiffSide, ma: BundleManifest, b: DiffSide, mb: BundleManifest): DiffResult['relation'] {
  if (a.bundleId === b.bundleId) return 'same';
  if ((mb.parents ?? []).some((p) => p.id === a.bundleId)) return 'b-builds-on-a';
  if ((ma.parents ?? []).some((p) => p.id === b.bundleId)) return 'a-builds-on-b';
  return 'unrelated';
}

function side(h: HeadFile): DiffSide {
  const keyId = h.signature === undefined ? undefined : signatureKeyId(h.signature);
  return {
    path: h.path,
    bundleId: h.id,
    created: h.manifest.created,
    ...(keyId === undefined ? {} : { keyId }),
    delta: h.manifest.parents !== undefined,
  };
}
